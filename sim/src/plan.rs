//! A scenario as a function of the seed: the workload's shape and, in swarm mode, which fault
//! kinds are on and how often they strike. Pure: the same (scenario, seed) always gives the
//! same plan, independent of how the simulation later consumes madsim's randomness.

/// The scenarios `tern-sim list` prints, in that order.
pub const SCENARIOS: [&str; 5] = [
    "single-broker-crash",
    "single-broker-network",
    "single-broker-reference",
    "single-broker-idempotent",
    "coordinator-crash",
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scenario {
    /// One broker; kills and restarts; every disk fault; several producers and consumers.
    SingleBrokerCrash,
    /// One broker; loss, latency, partitions (both ways and one-way) and connection resets
    /// between it and its clients, which time out and retry.
    SingleBrokerNetwork,
    /// The speed reference: 3 producers of about 1,000 records of 1 KiB per simulated
    /// second each, 2 consumers, no faults, 20 simulated seconds plus the final drain.
    SingleBrokerReference,
    /// Idempotent producers (InitProducerId, sequence numbers) that retry a send whose
    /// outcome is unknown with the same producer id, epoch and sequence, as the Java client
    /// does, while the broker crashes, its disk fails and the network drops, delays and cuts.
    SingleBrokerIdempotent,
    /// Committers store offsets through FindCoordinator and OffsetCommit and read them back
    /// with OffsetFetch while the coordinator's broker crashes and restarts and its disk fails
    /// (the faults that are not detected loss), beside the usual producers and consumers.
    CoordinatorCrash,
}

impl Scenario {
    pub fn parse(name: &str) -> Option<Scenario> {
        match name {
            "single-broker-crash" => Some(Scenario::SingleBrokerCrash),
            "single-broker-network" => Some(Scenario::SingleBrokerNetwork),
            "single-broker-reference" => Some(Scenario::SingleBrokerReference),
            "single-broker-idempotent" => Some(Scenario::SingleBrokerIdempotent),
            "coordinator-crash" => Some(Scenario::CoordinatorCrash),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Scenario::SingleBrokerCrash => SCENARIOS[0],
            Scenario::SingleBrokerNetwork => SCENARIOS[1],
            Scenario::SingleBrokerReference => SCENARIOS[2],
            Scenario::SingleBrokerIdempotent => SCENARIOS[3],
            Scenario::CoordinatorCrash => SCENARIOS[4],
        }
    }
}

/// Fault kinds the nemesis can apply.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum FaultKind {
    /// Kill the broker (unsynced writes dropped or torn) and restart it.
    Crash,
    /// Kill and restart the broker process only: the page cache survives.
    ProcessCrash,
    /// The next fdatasyncs of one partition fail with EIO; the broker is restarted later to
    /// recover that partition (the policy keeps it offline until re-opened).
    SyncEio,
    /// The next writes of one partition fail with EIO (the broker is restarted later, as for
    /// an fsync error).
    WriteEio,
    /// The disk fills up for a while.
    Enospc,
    /// A bit flips in a durable batch that has intact batches behind it.
    Corrupt,
    /// A sector of a segment fails reads with EIO for a while.
    ReadEio,
    /// A synced write of a partition's segment, index or checkpoint never reached the media
    /// (seen after the next crash, or at once when the page cache is evicted too).
    PhantomWrite,
    /// A synced write of a segment or index landed at a wrong offset of its file.
    MisdirectedWrite,
    /// The next reads of a partition's files return the bytes of a wrong offset, once each.
    MisdirectedRead,
    /// Writes and fdatasyncs take milliseconds of simulated time for a while.
    DiskLatency,
    /// Packet loss on every link for a while (madsim's TCP retransmits: delays).
    Loss,
    /// Latency spike on every link for a while.
    Latency,
    /// A client is cut off from the broker, both ways.
    PartitionBoth,
    /// Client → broker packets are dropped; the broker's replies still flow.
    PartitionRequests,
    /// Broker → client packets are dropped.
    PartitionResponses,
    /// Every client drops its connection and reconnects.
    ConnectionReset,
    /// The broker process stops for a while (SIGSTOP, a long GC or VM pause), then resumes:
    /// its sockets stay open, its timers fire late, clients time out and reconnect.
    Pause,
}

const CRASH_KINDS: [FaultKind; 11] = [
    FaultKind::Crash,
    FaultKind::ProcessCrash,
    FaultKind::SyncEio,
    FaultKind::WriteEio,
    FaultKind::Enospc,
    FaultKind::Corrupt,
    FaultKind::ReadEio,
    FaultKind::PhantomWrite,
    FaultKind::MisdirectedWrite,
    FaultKind::MisdirectedRead,
    FaultKind::DiskLatency,
];
// `Pause` is a process fault but lives here: to clients a paused broker is a network that
// stopped answering, and the crash scenario's kinds index the fuzz corpus (`scheduled`).
const NETWORK_KINDS: [FaultKind; 7] = [
    FaultKind::Loss,
    FaultKind::Latency,
    FaultKind::PartitionBoth,
    FaultKind::PartitionRequests,
    FaultKind::PartitionResponses,
    FaultKind::ConnectionReset,
    FaultKind::Pause,
];
/// Every disk and network fault: idempotent retries meet crashes, lost responses and both.
const IDEMPOTENT_KINDS: [FaultKind; 17] = [
    FaultKind::Crash,
    FaultKind::ProcessCrash,
    FaultKind::SyncEio,
    FaultKind::WriteEio,
    FaultKind::Enospc,
    FaultKind::Corrupt,
    FaultKind::ReadEio,
    FaultKind::PhantomWrite,
    FaultKind::MisdirectedWrite,
    FaultKind::MisdirectedRead,
    FaultKind::DiskLatency,
    FaultKind::Loss,
    FaultKind::Latency,
    FaultKind::PartitionBoth,
    FaultKind::PartitionRequests,
    FaultKind::PartitionResponses,
    FaultKind::ConnectionReset,
];
/// The disk faults that never destroy acknowledged data (no detected loss: a committed offset
/// must then survive everything), plus latency and resets so commits time out and overlap.
/// The partition-directed ones may hit the committers' `__consumer_offsets` partitions.
const COORDINATOR_KINDS: [FaultKind; 10] = [
    FaultKind::Crash,
    FaultKind::ProcessCrash,
    FaultKind::SyncEio,
    FaultKind::WriteEio,
    FaultKind::Enospc,
    FaultKind::ReadEio,
    FaultKind::MisdirectedRead,
    FaultKind::DiskLatency,
    FaultKind::Latency,
    FaultKind::ConnectionReset,
];

/// Known bugs planted on purpose (test-only switches) to prove the checker and the determinism
/// check can fail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Plant {
    /// The broker acknowledges before fdatasync (its relaxed flush policy, 500 ms) while a
    /// kill is a power failure: acknowledged records vanish.
    AckBeforeSync,
    /// Consumers (not the final drain) drop some records from what they report.
    DropRead,
    /// Consumers report some records one offset lower: an offset reused.
    ReuseOffset,
    /// Producers start in `HashMap` iteration order: a run depends on hash seeds, not the seed.
    HashMapOrder,
    /// Not a bug of ours but a fault the injector normally avoids: bit flips may hit the final
    /// durable batch of a segment, which recovery cannot tell from a torn write.
    CorruptTail,
    /// The broker's duplicate detection is off: every idempotent batch counts as new, so a
    /// retried send whose first attempt was appended is appended again.
    NoDedup,
    /// The coordinator answers OffsetCommit (and applies it) before its records are durable.
    CommitBeforeSync,
    /// Reads end at the written end of the log, not at the high watermark: consumers see
    /// records not yet durable, which a power failure can erase and reuse (issue 14).
    ServeAboveHighWatermark,
}

impl Plant {
    pub fn parse(name: &str) -> Option<Plant> {
        match name {
            "ack-before-sync" => Some(Plant::AckBeforeSync),
            "drop-read" => Some(Plant::DropRead),
            "reuse-offset" => Some(Plant::ReuseOffset),
            "hashmap-order" => Some(Plant::HashMapOrder),
            "corrupt-tail" => Some(Plant::CorruptTail),
            "no-dedup" => Some(Plant::NoDedup),
            "commit-before-sync" => Some(Plant::CommitBeforeSync),
            "serve-above-hwm" => Some(Plant::ServeAboveHighWatermark),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Plant::AckBeforeSync => "ack-before-sync",
            Plant::DropRead => "drop-read",
            Plant::ReuseOffset => "reuse-offset",
            Plant::HashMapOrder => "hashmap-order",
            Plant::CorruptTail => "corrupt-tail",
            Plant::NoDedup => "no-dedup",
            Plant::CommitBeforeSync => "commit-before-sync",
            Plant::ServeAboveHighWatermark => "serve-above-hwm",
        }
    }
}

#[derive(Clone, Debug)]
pub struct Plan {
    pub scenario: Scenario,
    pub seed: u64,
    pub producers: u32,
    pub consumers: u32,
    /// Producers are idempotent and retry sends whose outcome is unknown.
    pub idempotent: bool,
    /// Processes committing offsets, each for its own group (0: none).
    pub committers: u32,
    pub partitions: i32,
    pub record_bytes: usize,
    /// Pause between a producer's sends (each producer has one send in flight).
    pub produce_interval_ms: u64,
    /// Records per send: uniform in min..=max.
    pub records_per_send_min: u32,
    pub records_per_send_max: u32,
    /// Producers run from 0 to this; faults strike in [fault_start_ms, fault_end_ms).
    pub workload_ms: u64,
    pub fault_start_ms: u64,
    pub fault_end_ms: u64,
    /// Swarm: enabled kinds (empty: a fault-free seed).
    pub fault_kinds: Vec<FaultKind>,
    /// Mean pause between two faults.
    pub fault_interval_mean_ms: u64,
    pub torn_crash_percent: u8,
    pub plant: Option<Plant>,
    /// Faults chosen by a fuzzer instead of drawn by the nemesis (`Plan::scheduled`).
    pub schedule: Option<Vec<ScheduledFault>>,
}

/// One fault of a fuzzer-chosen schedule: after `delay_ms` (from the previous one), `kind`.
/// Its parameters (which partition, how long, which sector) still come from the seed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScheduledFault {
    pub delay_ms: u64,
    pub kind: FaultKind,
}

/// Faults in one schedule, at most (the fault window is 4 s).
pub const SCHEDULE_FAULTS_MAX: usize = 64;

/// SplitMix64 over the seed: the plan's own stream, apart from madsim's.
pub struct PlanRng(u64);

impl PlanRng {
    pub fn new(seed: u64) -> PlanRng {
        PlanRng(seed ^ 0x7E57_5EED_0000_0000)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `low..=high`.
    pub fn between(&mut self, low: u64, high: u64) -> u64 {
        assert!(low <= high);
        low + self.next_u64() % (high - low + 1)
    }
}

/// Swarm testing: one seed in eight runs fault-free; the others enable each kind with
/// probability 1/2 (at least one). A planted bug that only shows through some fault gets it.
fn swarm(rng: &mut PlanRng, kinds: &[FaultKind], plant: Option<Plant>) -> Vec<FaultKind> {
    let fault_free = rng.between(0, 7) == 0;
    let mut fault_kinds: Vec<FaultKind> = Vec::new();
    if !fault_free {
        fault_kinds = kinds.iter().copied().filter(|_| rng.between(0, 1) == 1).collect();
        if fault_kinds.is_empty() {
            fault_kinds.push(kinds[rng.between(0, kinds.len() as u64 - 1) as usize]);
        }
    }
    let needs = match plant {
        // These planted bugs only show through a power failure.
        Some(Plant::AckBeforeSync | Plant::CommitBeforeSync) => Some(FaultKind::Crash),
        Some(Plant::CorruptTail) => Some(FaultKind::Corrupt),
        // A retry of an appended batch needs a lost answer.
        Some(Plant::NoDedup) => Some(FaultKind::PartitionResponses),
        // Written and not yet synced is a window only while syncs take time (measured: of 300
        // seeds, the 62 that read above the watermark all had disk latency).
        Some(Plant::ServeAboveHighWatermark) => Some(FaultKind::DiskLatency),
        _ => None,
    };
    if let Some(kind) = needs.filter(|kind| !fault_kinds.contains(kind)) {
        fault_kinds.push(kind);
    }
    fault_kinds
}

impl Plan {
    pub fn new(scenario: Scenario, seed: u64, plant: Option<Plant>) -> Plan {
        if scenario == Scenario::SingleBrokerReference {
            return Plan::reference(seed, plant);
        }
        let mut rng = PlanRng::new(seed);
        let kinds: &[FaultKind] = match scenario {
            Scenario::SingleBrokerCrash => &CRASH_KINDS,
            Scenario::SingleBrokerNetwork => &NETWORK_KINDS,
            Scenario::SingleBrokerIdempotent => &IDEMPOTENT_KINDS,
            Scenario::CoordinatorCrash => &COORDINATOR_KINDS,
            Scenario::SingleBrokerReference => unreachable!("handled above"),
        };
        let fault_kinds = swarm(&mut rng, kinds, plant);
        let mut plan = Plan {
            scenario,
            seed,
            producers: rng.between(2, 5) as u32,
            consumers: rng.between(1, 3) as u32,
            idempotent: false,
            committers: 0,
            partitions: rng.between(1, 6) as i32,
            record_bytes: [16, 100, 1_000][rng.between(0, 2) as usize],
            produce_interval_ms: rng.between(0, 5),
            records_per_send_min: 1,
            records_per_send_max: rng.between(1, 8) as u32,
            workload_ms: 6_000,
            fault_start_ms: 500,
            fault_end_ms: 4_500,
            fault_kinds,
            fault_interval_mean_ms: rng.between(150, 1_500),
            torn_crash_percent: rng.between(0, 100) as u8,
            plant,
            schedule: None,
        };
        // Drawn after everything else, so the older scenarios' plans stay as they were.
        match scenario {
            Scenario::SingleBrokerIdempotent => plan.idempotent = true,
            Scenario::CoordinatorCrash => plan.committers = rng.between(1, 3) as u32,
            _ => {}
        }
        plan
    }

    /// One send of 12 records at a time per producer: with the ~11 ms round trip of madsim's
    /// default 1-10 ms links plus the group commit, about 1,000 records per second each.
    fn reference(seed: u64, plant: Option<Plant>) -> Plan {
        Plan {
            scenario: Scenario::SingleBrokerReference,
            seed,
            producers: 3,
            consumers: 2,
            idempotent: false,
            committers: 0,
            partitions: 4,
            record_bytes: 1_024,
            produce_interval_ms: 0,
            records_per_send_min: 12,
            records_per_send_max: 12,
            workload_ms: 20_000,
            fault_start_ms: 500,
            fault_end_ms: 19_500,
            fault_kinds: Vec::new(),
            fault_interval_mean_ms: 1_000,
            torn_crash_percent: 0,
            plant,
            schedule: None,
        }
    }

    /// A crash-scenario plan whose seed, torn-crash percentage and fault schedule come from
    /// `bytes` (the `sim_schedule` fuzz target): 8 bytes of seed, 1 of torn percentage, then
    /// pairs (delay in units of 16 ms, kind index into the crash scenario's kinds). Missing
    /// bytes read as zero; at most `SCHEDULE_FAULTS_MAX` faults.
    pub fn scheduled(bytes: &[u8]) -> Plan {
        let byte = |index: usize| bytes.get(index).copied().unwrap_or(0);
        let seed = u64::from_le_bytes(std::array::from_fn(byte));
        let mut plan = Plan::new(Scenario::SingleBrokerCrash, seed, None);
        plan.torn_crash_percent = byte(8) % 101;
        let schedule: Vec<ScheduledFault> = bytes
            .get(9..)
            .unwrap_or(&[])
            .chunks_exact(2)
            .take(SCHEDULE_FAULTS_MAX)
            .map(|pair| ScheduledFault {
                delay_ms: u64::from(pair[0]) * 16,
                kind: CRASH_KINDS[usize::from(pair[1]) % CRASH_KINDS.len()],
            })
            .collect();
        plan.fault_kinds = CRASH_KINDS
            .iter()
            .copied()
            .filter(|kind| schedule.iter().any(|fault| fault.kind == *kind))
            .collect();
        plan.schedule = Some(schedule);
        plan
    }

    pub fn faults_summary(&self) -> String {
        if self.fault_kinds.is_empty() {
            return "none".to_string();
        }
        let names: Vec<String> = self.fault_kinds.iter().map(|kind| format!("{kind:?}")).collect();
        format!("{}/{}ms", names.join("+"), self.fault_interval_mean_ms)
    }
}
