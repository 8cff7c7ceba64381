//! A scenario as a function of the seed: the workload's shape and, in swarm mode, which fault
//! kinds are on and how often they strike. Pure: the same (scenario, seed) always gives the
//! same plan, independent of how the simulation later consumes madsim's randomness.

/// The scenarios `tern-sim list` prints, in that order.
pub const SCENARIOS: [&str; 11] = [
    "single-broker-crash",
    "single-broker-network",
    "single-broker-reference",
    "single-broker-idempotent",
    "coordinator-crash",
    "three-broker-crash",
    "three-broker-partition",
    "five-broker-partition",
    "five-broker-crash",
    "three-broker-idempotent",
    "three-broker-wipe",
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
    /// Three brokers in a cluster, every topic partition replicated three times: brokers
    /// (often a partition's leader) lose power, crash, restart one after another, pause;
    /// a majority loses power at once; disks slow down and fail without destroying
    /// acknowledged data.
    ThreeBrokerCrash,
    /// Three brokers: the network between them splits (a minority cut off, often with the
    /// leader; a bridge; one-way links; links that flap), clients lose a broker, packets
    /// are lost and delayed, a broker pauses.
    ThreeBrokerPartition,
    /// The partition faults on five brokers (replication factor 3: a partition's replicas
    /// are three of the five), where a minority may be two brokers and the majorities ring
    /// leaves every broker a majority of its own.
    FiveBrokerPartition,
    /// The crash faults on five brokers.
    FiveBrokerCrash,
    /// Idempotent producers retrying through leader changes, on three brokers, under every
    /// cluster fault.
    ThreeBrokerIdempotent,
    ThreeBrokerWipe,
}

impl Scenario {
    pub fn parse(name: &str) -> Option<Scenario> {
        match name {
            "single-broker-crash" => Some(Scenario::SingleBrokerCrash),
            "single-broker-network" => Some(Scenario::SingleBrokerNetwork),
            "single-broker-reference" => Some(Scenario::SingleBrokerReference),
            "single-broker-idempotent" => Some(Scenario::SingleBrokerIdempotent),
            "coordinator-crash" => Some(Scenario::CoordinatorCrash),
            "three-broker-crash" => Some(Scenario::ThreeBrokerCrash),
            "three-broker-partition" => Some(Scenario::ThreeBrokerPartition),
            "five-broker-partition" => Some(Scenario::FiveBrokerPartition),
            "five-broker-crash" => Some(Scenario::FiveBrokerCrash),
            "three-broker-idempotent" => Some(Scenario::ThreeBrokerIdempotent),
            "three-broker-wipe" => Some(Scenario::ThreeBrokerWipe),
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
            Scenario::ThreeBrokerCrash => SCENARIOS[5],
            Scenario::ThreeBrokerPartition => SCENARIOS[6],
            Scenario::FiveBrokerPartition => SCENARIOS[7],
            Scenario::FiveBrokerCrash => SCENARIOS[8],
            Scenario::ThreeBrokerIdempotent => SCENARIOS[9],
            Scenario::ThreeBrokerWipe => SCENARIOS[10],
        }
    }

    /// Brokers the scenario runs (1: the single node, no cluster configuration).
    pub fn brokers(self) -> u32 {
        match self {
            Scenario::ThreeBrokerCrash
            | Scenario::ThreeBrokerPartition
            | Scenario::ThreeBrokerIdempotent
            | Scenario::ThreeBrokerWipe => 3,
            Scenario::FiveBrokerPartition | Scenario::FiveBrokerCrash => 5,
            _ => 1,
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
    /// In a cluster: one broker, half the time a partition's leader.
    Pause,
    /// A cluster: the broker last seen leading a random partition loses power (unsynced
    /// writes dropped or torn) and restarts 10 ms to 1 s later.
    LeaderCrash,
    /// A cluster: a majority of the brokers (sometimes all) lose power at once; each
    /// restarts after its own 10 ms to 1.5 s, so a stale replica may come back first.
    PowerOutage,
    /// A cluster: every broker in turn is killed (a process crash or a power failure) or
    /// shut down cleanly (SIGTERM's controlled shutdown: leadership handed over first), and
    /// restarted, 0.3 to 1.5 s apart.
    RollingRestart,
    /// A cluster: a minority of the brokers (half the time with a partition's leader) is
    /// cut off from the others, both ways, for 0.3 to 3 s. Clients still reach every broker.
    PartitionMinority,
    /// A cluster: every broker still reaches a majority (itself and its two neighbours on a
    /// ring), but no two brokers reach the same one; with three brokers, a bridge (one
    /// broker reaches both others, which do not reach each other).
    PartitionMajoritiesRing,
    /// A cluster: one broker's messages to its peers are dropped, or theirs to it: one-way.
    PartitionOneWay,
    /// A cluster: the links of one broker (or of one pair) to its peers are cut and
    /// restored every 20 to 300 ms for 1 to 3 s.
    FlappingLinks,
    Wipe,
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

/// A cluster's crash faults: power failures of one broker, of the leader, of a majority;
/// process crashes, rolling restarts, pauses; disks that slow down, fail a sync or a write,
/// or fill up (each ends with a restart of the broker, which re-opens what the fault
/// stopped). No fault here destroys acknowledged data at rest: repairing one replica's
/// corruption from its peers is not built (docs/simulation.md).
const CLUSTER_CRASH_KINDS: [FaultKind; 11] = [
    FaultKind::Crash,
    FaultKind::ProcessCrash,
    FaultKind::LeaderCrash,
    FaultKind::PowerOutage,
    FaultKind::RollingRestart,
    FaultKind::Pause,
    FaultKind::DiskLatency,
    FaultKind::SyncEio,
    FaultKind::WriteEio,
    FaultKind::Enospc,
    FaultKind::ConnectionReset,
];
/// A cluster's network faults, between brokers and between clients and brokers, plus
/// pauses and leader crashes (a partition heals into an election either way).
const CLUSTER_PARTITION_KINDS: [FaultKind; 12] = [
    FaultKind::PartitionMinority,
    FaultKind::PartitionMajoritiesRing,
    FaultKind::PartitionOneWay,
    FaultKind::FlappingLinks,
    FaultKind::Loss,
    FaultKind::Latency,
    FaultKind::PartitionBoth,
    FaultKind::PartitionRequests,
    FaultKind::PartitionResponses,
    FaultKind::ConnectionReset,
    FaultKind::Pause,
    FaultKind::LeaderCrash,
];
/// A cluster where one broker's disk is wiped (then the same broker's again, never
/// another's: two lost disks of three lose acknowledged records by design), among crashes,
/// pauses and a minority cut off.
const CLUSTER_WIPE_KINDS: [FaultKind; 9] = [
    FaultKind::Wipe,
    FaultKind::Crash,
    FaultKind::ProcessCrash,
    FaultKind::LeaderCrash,
    FaultKind::PowerOutage,
    FaultKind::RollingRestart,
    FaultKind::Pause,
    FaultKind::DiskLatency,
    FaultKind::PartitionMinority,
];
/// The faults only a cluster's nemesis applies.
const CLUSTER_ONLY_KINDS: [FaultKind; 8] = [
    FaultKind::LeaderCrash,
    FaultKind::PowerOutage,
    FaultKind::RollingRestart,
    FaultKind::PartitionMinority,
    FaultKind::PartitionMajoritiesRing,
    FaultKind::PartitionOneWay,
    FaultKind::FlappingLinks,
    FaultKind::Wipe,
];
/// Every cluster fault but the wipe.
const CLUSTER_ALL_KINDS: [FaultKind; 20] = [
    FaultKind::Crash,
    FaultKind::ProcessCrash,
    FaultKind::LeaderCrash,
    FaultKind::PowerOutage,
    FaultKind::RollingRestart,
    FaultKind::Pause,
    FaultKind::DiskLatency,
    FaultKind::SyncEio,
    FaultKind::WriteEio,
    FaultKind::Enospc,
    FaultKind::ConnectionReset,
    FaultKind::PartitionMinority,
    FaultKind::PartitionMajoritiesRing,
    FaultKind::PartitionOneWay,
    FaultKind::FlappingLinks,
    FaultKind::Loss,
    FaultKind::Latency,
    FaultKind::PartitionBoth,
    FaultKind::PartitionRequests,
    FaultKind::PartitionResponses,
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
    /// A cluster: a follower acknowledges appended batches as durable before they are
    /// fdatasync'd (`ReplicaConfig::planted_ack_before_durable`), while power failures drop
    /// unsynced writes: a batch committed on such an acknowledgement can vanish.
    AckBeforeDurable,
    /// A cluster: a leader's commit index counts only its own durable log
    /// (`ReplicaConfig::planted_commit_without_majority`): it acknowledges writes no majority
    /// holds, which a leader elected without it overwrites.
    CommitWithoutMajority,
    /// A cluster: a voter grants its vote to every candidate of an epoch
    /// (`ReplicaConfig::planted_vote_twice`): two leaders can win one epoch.
    VoteTwice,
    /// A cluster: a new leader serves clients before its own leader-change batch is committed
    /// (`ReplicaConfig::planted_serve_before_own_commit`): its high watermark may be below
    /// what the previous leader let consumers see.
    ServeBeforeOwnCommit,
    /// A cluster: voters grant (pre-)votes without comparing logs
    /// (`ReplicaConfig::planted_vote_without_log_check`): a replica missing committed entries
    /// can be elected and overwrite them.
    VoteWithoutLogCheck,
    /// A cluster: a follower's copies of the leader's batches leave its producer state as it
    /// was (`LogConfig::planted_no_producer_state_on_follower`): after a failover the new
    /// leader appends an idempotent retry of a batch it already holds.
    NoProducerStateOnFollower,
    /// A cluster: the partition driver sends a `Ready`'s messages before making its hard
    /// state durable (`ReplicaConfig::planted_vote_before_sync`): a power failure can
    /// forget a vote already given, and the voter can vote again in that epoch.
    VoteBeforeSync,
    /// A cluster: a replica on a wiped disk votes as its old self did, and candidates count
    /// its vote (`ReplicaConfig::planted_wiped_replica_votes`): with the leader down, it
    /// elects a replica that lacks records it had acknowledged.
    WipedReplicaVotes,
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
            "ack-before-durable" => Some(Plant::AckBeforeDurable),
            "commit-without-majority" => Some(Plant::CommitWithoutMajority),
            "vote-twice" => Some(Plant::VoteTwice),
            "serve-before-own-commit" => Some(Plant::ServeBeforeOwnCommit),
            "vote-without-log-check" => Some(Plant::VoteWithoutLogCheck),
            "no-producer-state-on-follower" => Some(Plant::NoProducerStateOnFollower),
            "vote-before-sync" => Some(Plant::VoteBeforeSync),
            "wiped-replica-votes" => Some(Plant::WipedReplicaVotes),
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
            Plant::AckBeforeDurable => "ack-before-durable",
            Plant::CommitWithoutMajority => "commit-without-majority",
            Plant::VoteTwice => "vote-twice",
            Plant::ServeBeforeOwnCommit => "serve-before-own-commit",
            Plant::VoteWithoutLogCheck => "vote-without-log-check",
            Plant::NoProducerStateOnFollower => "no-producer-state-on-follower",
            Plant::VoteBeforeSync => "vote-before-sync",
            Plant::WipedReplicaVotes => "wiped-replica-votes",
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
    /// Brokers: 1 is the single node of the older scenarios (no cluster configuration);
    /// more form a cluster whose every broker votes in the controller.
    pub brokers: u32,
    /// A cluster's Raft timing (partitions and controller); 0 on a single node.
    pub election_timeout_ms: u64,
    pub heartbeat_interval_ms: u64,
    /// A cluster's disks are never instant: every fdatasync takes up to this long (uniform in
    /// max/2..max), as on real hardware, so the window between a write and its sync is there
    /// to be hit (0: instant, the single node's default).
    pub disk_sync_us_max: u64,
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
    let needs: &[FaultKind] = match plant {
        // These planted bugs only show through a power failure.
        Some(Plant::AckBeforeSync | Plant::CommitBeforeSync) => &[FaultKind::Crash],
        Some(Plant::CorruptTail) => &[FaultKind::Corrupt],
        // A retry of an appended batch needs a lost answer.
        Some(Plant::NoDedup) => &[FaultKind::PartitionResponses],
        // Written and not yet synced is a window only while syncs take time (measured: of 300
        // seeds, the 62 that read above the watermark all had disk latency).
        Some(Plant::ServeAboveHighWatermark) => &[FaultKind::DiskLatency],
        // A follower's unsynced acknowledgement is lost only when it loses power together
        // with the leader (or the leader stays away); slow syncs widen the window.
        Some(Plant::AckBeforeDurable) => &[FaultKind::PowerOutage, FaultKind::DiskLatency],
        // A leader acknowledging alone is overwritten once cut off from a majority that
        // elects another.
        Some(Plant::CommitWithoutMajority) => &[FaultKind::PartitionMinority],
        // Two candidates in one epoch: elections that overlap, after links flap.
        Some(Plant::VoteTwice) => &[FaultKind::FlappingLinks],
        Some(Plant::WipedReplicaVotes) => &[FaultKind::Wipe],
        _ => &[],
    };
    // Only faults the scenario's nemesis applies (a cluster plant on a single node, or
    // `corrupt-tail` on a cluster, finds nothing but does not break the run).
    let cluster = kinds.contains(&FaultKind::LeaderCrash);
    let applies = |kind: &FaultKind| match cluster {
        true => CLUSTER_ALL_KINDS.contains(kind) || *kind == FaultKind::Wipe,
        false => !CLUSTER_ONLY_KINDS.contains(kind),
    };
    for kind in needs {
        if !fault_kinds.contains(kind) && applies(kind) {
            fault_kinds.push(*kind);
        }
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
            Scenario::ThreeBrokerCrash | Scenario::FiveBrokerCrash => &CLUSTER_CRASH_KINDS,
            Scenario::ThreeBrokerPartition | Scenario::FiveBrokerPartition => {
                &CLUSTER_PARTITION_KINDS
            }
            Scenario::ThreeBrokerIdempotent => &CLUSTER_ALL_KINDS,
            Scenario::ThreeBrokerWipe => &CLUSTER_WIPE_KINDS,
            Scenario::SingleBrokerReference => unreachable!("handled above"),
        };
        let mut fault_kinds = swarm(&mut rng, kinds, plant);
        // The wipe scenario's faulty seeds all wipe (drawn after the swarm: no draw moves).
        let wipes = scenario == Scenario::ThreeBrokerWipe && !fault_kinds.is_empty();
        if wipes && !fault_kinds.contains(&FaultKind::Wipe) {
            fault_kinds.push(FaultKind::Wipe);
        }
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
            brokers: 1,
            election_timeout_ms: 0,
            heartbeat_interval_ms: 0,
            disk_sync_us_max: 0,
        };
        // Drawn after everything else, so the older scenarios' plans stay as they were.
        match scenario {
            Scenario::SingleBrokerIdempotent => plan.idempotent = true,
            Scenario::CoordinatorCrash => plan.committers = rng.between(1, 3) as u32,
            _ => {}
        }
        if scenario.brokers() > 1 {
            plan.cluster(&mut rng);
        }
        plan
    }

    /// A cluster's plan: its brokers and Raft timing, and a longer timeline, since the
    /// controller elects a leader and the topic's partitions elect theirs before the first
    /// write (about a second with these timings).
    fn cluster(&mut self, rng: &mut PlanRng) {
        self.brokers = self.scenario.brokers();
        self.idempotent = self.scenario == Scenario::ThreeBrokerIdempotent;
        self.election_timeout_ms = rng.between(300, 1_000);
        self.heartbeat_interval_ms = rng.between(50, 100);
        self.disk_sync_us_max = rng.between(200, 5_000);
        self.fault_start_ms = 1_000;
        self.fault_end_ms = 7_000;
        self.workload_ms = 8_500;
    }

    pub fn is_cluster(&self) -> bool {
        self.brokers > 1
    }

    /// Every disk's latency outside the slow-disk fault.
    pub fn disk_latency(&self) -> tern::io::DiskLatency {
        tern::io::DiskLatency { write_us_max: 0, sync_us_max: self.disk_sync_us_max }
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
            brokers: 1,
            election_timeout_ms: 0,
            heartbeat_interval_ms: 0,
            disk_sync_us_max: 0,
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
