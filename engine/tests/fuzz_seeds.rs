//! The seed generator of the log-level fuzz targets (`segment_recovery`, `index`): real
//! segments written by `Log::append` on a `SimDisk`, their durable bytes copied out, plus
//! truncations and bit flips of them. It is deterministic, so as a test it checks that the
//! committed seeds (`fuzz/corpus/<target>/gen-*.bin`) are exactly what it generates; run it
//! with `TERN_WRITE_FUZZ_SEEDS=1` to (re)write them.

use std::path::{Path, PathBuf};

use bytes::BytesMut;
use tern::io::{block_on, Disk, SimDisk};
use tern::log::Log;
use tern::record_batch::build::{encode_batch, ProducerStamp, Record};

#[path = "../../fuzz/src/broker.rs"]
#[allow(dead_code)] // `run_persistent` serves the fuzz target only.
mod broker;
#[path = "../../fuzz/src/broker_seeds.rs"]
mod broker_seeds;
#[path = "../../fuzz/src/index.rs"]
mod index;
#[path = "../../fuzz/src/peer_frame.rs"]
mod peer_frame;
#[path = "../../fuzz/src/segment_recovery.rs"]
#[allow(dead_code)] // `run_persistent` serves the fuzz target only.
mod segment_recovery;
#[path = "../../fuzz/src/state_files.rs"]
mod state_files;

use segment_recovery::{Case, CheckpointInput, IntentInput};

/// The files of one partition directory after a clean close, as durable on the disk.
struct Written {
    segment: Vec<u8>,
    offset_index: Vec<u8>,
    time_index: Vec<u8>,
    checkpoint: Vec<u8>,
    intent: Option<Vec<u8>>,
    /// Byte position where each batch starts.
    batch_starts: Vec<usize>,
}

fn batch(records: usize, value_bytes: usize, timestamp_ms: i64) -> BytesMut {
    let records: Vec<Record> = (0..records)
        .map(|index| Record {
            key: (index % 2 == 0).then(|| b"key".to_vec()),
            value: Some(vec![(index % 251) as u8; value_bytes]),
            timestamp_delta: index as i64,
            ..Record::default()
        })
        .collect();
    BytesMut::from(&encode_batch(&records, timestamp_ms, ProducerStamp::NONE)[..])
}

/// Appends `groups` (each one `Log::append` of batches shaped (records, value bytes)).
fn write_log(groups: &[&[(usize, usize)]]) -> Written {
    block_on(async {
        let sim = SimDisk::new(7);
        let disk = Disk::Simulated(sim.clone());
        let dir = segment_recovery::partition_dir();
        let log = Log::open(disk, dir.clone(), segment_recovery::config()).await.expect("open");
        let mut batch_starts = Vec::new();
        let mut position = 0;
        for (index, group) in groups.iter().enumerate() {
            let timestamp_ms = 1_700_000_000_000 + 1000 * index as i64;
            let batches: Vec<BytesMut> =
                group.iter().map(|&(records, value)| batch(records, value, timestamp_ms)).collect();
            for batch in &batches {
                batch_starts.push(position);
                position += batch.len();
            }
            log.append(batches, 1).await.expect("append");
        }
        log.close().await.expect("close");
        let durable = |name: &str| sim.durable_bytes(&dir.join(name));
        let file = |suffix: &str| durable(&format!("{:020}.{suffix}", 0)).expect("file");
        Written {
            segment: file("log"),
            offset_index: file("index"),
            time_index: file("timeindex"),
            checkpoint: durable("recovery-point").expect("checkpoint"),
            intent: durable("write-intent"),
            batch_starts,
        }
    })
}

fn bare(segment: Vec<u8>) -> Case {
    Case { segment, ..Case::default() }
}

fn flipped(segment: &[u8], position: usize, bit: u8) -> Vec<u8> {
    let mut segment = segment.to_vec();
    segment[position] ^= 1 << bit;
    segment
}

/// Offsets inside a batch header (docs/storage.md): length, magic, CRC, attributes, records.
const LENGTH_POSITION: usize = 10;
const MAGIC_POSITION: usize = 16;
const CRC_POSITION: usize = 18;
const BASE_OFFSET_POSITION: usize = 7;
const RECORDS_POSITION: usize = 70;

fn segment_recovery_seeds() -> Vec<(String, Vec<u8>)> {
    let single = write_log(&[&[(3, 20)]]);
    let several = write_log(&[&[(1, 0)], &[(5, 40)], &[(2, 300)], &[(4, 10)], &[(1, 90)]]);
    let grouped = write_log(&[&[(2, 30), (3, 10), (1, 50)], &[(4, 20), (2, 5)]]);
    let mut seeds: Vec<(String, Case)> = vec![
        ("empty".into(), bare(Vec::new())),
        ("single".into(), bare(single.segment.clone())),
        ("several".into(), bare(several.segment.clone())),
        ("grouped".into(), bare(grouped.segment.clone())),
    ];
    for (name, written) in [("single", &single), ("several", &several), ("grouped", &grouped)] {
        seeds.push((
            format!("{name}-with-files"),
            Case {
                offset_index: Some(written.offset_index.clone()),
                time_index: Some(written.time_index.clone()),
                checkpoint: Some(CheckpointInput::Raw(written.checkpoint.clone())),
                intent: written.intent.clone().map(IntentInput::Raw),
                ..bare(written.segment.clone())
            },
        ));
    }
    let segment = &several.segment;
    let starts = &several.batch_starts;
    let last = *starts.last().expect("batches");
    for (name, cut) in [
        ("cut-last-byte", segment.len() - 1),
        ("cut-mid-last-batch", last + (segment.len() - last) / 2),
        ("cut-mid-header", starts[2] + 30),
        ("cut-at-batch", starts[3]),
    ] {
        seeds.push((format!("several-{name}"), bare(segment[..cut].to_vec())));
    }
    for (batch, batch_name) in [(0, "first"), (2, "middle"), (starts.len() - 1, "last")] {
        let start = starts[batch];
        for (field, position, bit) in [
            ("length", LENGTH_POSITION, 3),
            ("magic", MAGIC_POSITION, 0),
            ("crc", CRC_POSITION, 5),
            ("base-offset", BASE_OFFSET_POSITION, 1),
            ("records", RECORDS_POSITION, 6),
        ] {
            let name = format!("several-flip-{batch_name}-{field}");
            seeds.push((name, bare(flipped(segment, start + position, bit))));
        }
    }
    seeds.push((
        "several-checkpoint-then-flip".into(),
        Case {
            checkpoint: Some(CheckpointInput::AtIntactBatch { batches: 2, clean_shutdown: true }),
            offset_index: Some(several.offset_index.clone()),
            time_index: Some(several.time_index.clone()),
            ..bare(flipped(segment, starts[3] + RECORDS_POSITION, 2))
        },
    ));
    // A checkpoint that loads the index files, whose one entry points inside a batch.
    let mut misdirecting_index = 1u32.to_be_bytes().to_vec();
    misdirecting_index.extend_from_slice(&(starts[1] as u32 + 3).to_be_bytes());
    seeds.push((
        "several-checkpoint-index-inside-batch".into(),
        Case {
            checkpoint: Some(CheckpointInput::AtIntactBatch { batches: 4, clean_shutdown: true }),
            offset_index: Some(misdirecting_index),
            time_index: Some(Vec::new()),
            ..bare(segment.clone())
        },
    ));
    // A torn group: its first batch damaged, the rest of the group intact, inside the intent.
    let grouped_starts = &grouped.batch_starts;
    seeds.push((
        "grouped-intent-torn-group".into(),
        Case {
            intent: Some(IntentInput::Fields { start_offset: 6, offsets: 6 }),
            ..bare(flipped(&grouped.segment, grouped_starts[3] + RECORDS_POSITION, 4))
        },
    ));
    // A roll: a second segment based where the first ends (13), and the same with the
    // first segment's last batch torn.
    let mut rolled = single.segment.clone();
    rolled[..8].copy_from_slice(&13i64.to_be_bytes());
    seeds.push((
        "two-segments".into(),
        Case { later_segment: Some((13, rolled.clone())), ..bare(segment.clone()) },
    ));
    seeds.push((
        "two-segments-first-torn".into(),
        Case { later_segment: Some((13, rolled)), ..bare(segment[..segment.len() - 9].to_vec()) },
    ));
    seeds.push((
        "checkpoint-fields".into(),
        Case {
            checkpoint: Some(CheckpointInput::Fields { recovery_offset: 5, position_bytes: 100 }),
            ..bare(segment.clone())
        },
    ));
    seeds.into_iter().map(|(name, case)| (name, case.encode())).collect()
}

/// Index seeds: the real files of a written log, with lookup keys around their entries.
fn index_seeds() -> Vec<(String, Vec<u8>)> {
    let groups: [&[(usize, usize)]; 12] = [&[(3, 100)]; 12];
    let written = write_log(&groups);
    let size = u32::try_from(written.segment.len()).expect("small segment");
    let mut seed = Vec::new();
    seed.extend_from_slice(&size.to_be_bytes());
    seed.extend_from_slice(&36u32.to_be_bytes());
    seed.extend_from_slice(&128u16.to_be_bytes());
    for file in [&written.offset_index, &written.time_index] {
        let length = u16::try_from(file.len()).expect("small index");
        seed.extend_from_slice(&length.to_be_bytes());
        seed.extend_from_slice(file);
    }
    for (relative_offset, timestamp_ms) in [(0u32, 0i64), (5, 1_700_000_005_000), (35, i64::MAX)] {
        seed.extend_from_slice(&relative_offset.to_be_bytes());
        seed.extend_from_slice(&timestamp_ms.to_be_bytes());
    }
    assert!(!written.offset_index.is_empty() && !written.time_index.is_empty());
    vec![("real-files".into(), seed)]
}

fn corpus_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus").join(target)
}

/// Every seed must pass its target before it is written or compared.
fn write_or_check(target: &str, seeds: Vec<(String, Vec<u8>)>, run: fn(&[u8])) {
    for (_, bytes) in &seeds {
        run(bytes);
    }
    let directory = corpus_dir(target);
    if std::env::var_os("TERN_WRITE_FUZZ_SEEDS").is_some() {
        std::fs::create_dir_all(&directory).expect("corpus directory");
        for (name, bytes) in &seeds {
            std::fs::write(directory.join(format!("gen-{name}.bin")), bytes).expect("write seed");
        }
        return;
    }
    for (name, bytes) in &seeds {
        let path = directory.join(format!("gen-{name}.bin"));
        let committed = std::fs::read(&path).unwrap_or_default();
        assert!(
            committed == *bytes,
            "{} differs from the generator; rerun with TERN_WRITE_FUZZ_SEEDS=1",
            path.display()
        );
    }
}

/// Three voters pinned, then the second's old directory removed.
fn replica_voters_file() -> Vec<u8> {
    use tern::replication::{DirectoryId, NodeId, Voter, VoterChange, VoterSet};
    let voter =
        |node, directory| Voter { node: NodeId(node), directory: Some(DirectoryId(directory)) };
    let pinned = VoterSet::new(vec![voter(1, 11), voter(2, 22), voter(3, 33)]).expect("set");
    let removed = pinned.without(NodeId(2)).expect("two left");
    let changes =
        [VoterChange { offset: 3, voters: pinned }, VoterChange { offset: 40, voters: removed }];
    tern::broker::partition::voters_file::encode(&changes)
}

fn leader_epochs_file() -> Vec<u8> {
    use tern::log::leader_epochs::{self, LeaderEpochs};
    let mut epochs = LeaderEpochs::new();
    for (epoch, start_offset) in [(0, 0), (3, 120), (4, 5_000)] {
        epochs.assign(epoch, start_offset);
    }
    leader_epochs::encode(&epochs)
}

/// One seed per state file kind, as the broker writes it, plus a torn and a flipped copy.
fn state_files_seeds() -> Vec<(String, Vec<u8>)> {
    use tern::broker::groups::records::{
        GroupKey, GroupRecord, GroupValue, MemberValue, MetadataValue, OffsetValue,
    };
    use tern::broker::producer_ids;
    use tern::log::checkpoint::{self, Checkpoint};
    use tern::log::intent::{self, Intent};
    use tern::log::producer_snapshot;
    use tern::log::producers::{ProducerBatch, ProducerStates};

    let checkpoint = Checkpoint {
        segment_base_offset: 100,
        recovery_offset: 150,
        position_bytes: 4096,
        clean_shutdown: true,
    };
    let mut producers = ProducerStates::default();
    for (sequence, offset) in [(0, 10), (5, 20), (10, 31)] {
        let batch = ProducerBatch {
            producer_id: 7,
            epoch: 2,
            first_sequence: sequence,
            records_delta: 4,
            max_timestamp_ms: 1_700_000_000_000 + i64::from(sequence),
        };
        producers.apply(&batch, offset, offset + 4);
    }
    let offset_commit = GroupRecord {
        key: GroupKey::Offset { group: "g".into(), topic: "orders".into(), partition: 3 },
        value: Some(GroupValue::Offset(OffsetValue {
            offset: 42,
            leader_epoch: 0,
            metadata: "checkpoint".into(),
            commit_timestamp_ms: 1_700_000_000_000,
            expire_timestamp_ms: -1,
        })),
    };
    let member = MemberValue {
        member_id: "consumer-1-abc".into(),
        group_instance_id: Some("static-1".into()),
        client_id: "consumer-1".into(),
        client_host: "/127.0.0.1".into(),
        rebalance_timeout_ms: 300_000,
        session_timeout_ms: 45_000,
        subscription: bytes::Bytes::from_static(b"\0\x01subscription"),
        assignment: bytes::Bytes::from_static(b"\0\x01assignment"),
    };
    let metadata = GroupRecord {
        key: GroupKey::Metadata { group: "g".into() },
        value: Some(GroupValue::Metadata(MetadataValue {
            protocol_type: "consumer".into(),
            generation: 5,
            protocol: Some("range".into()),
            leader: Some("consumer-1-abc".into()),
            current_state_timestamp_ms: 1_700_000_000_000,
            members: vec![member],
        })),
    };
    let tombstone = GroupRecord { value: None, ..offset_commit.clone() };
    let record = |record: &GroupRecord| {
        let (key, value) = record.encode().expect("seed records encode");
        state_files::join_group_record(&key, value.as_deref())
    };
    let files = [
        ("checkpoint", state_files::KIND_CHECKPOINT, checkpoint::encode(&checkpoint)),
        (
            "intent",
            state_files::KIND_INTENT,
            intent::encode(&Intent { start_offset: 10, end_offset: 25 }),
        ),
        (
            "producer-snapshot",
            state_files::KIND_PRODUCER_SNAPSHOT,
            producer_snapshot::encode(&producers, 40),
        ),
        ("producer-ids", state_files::KIND_PRODUCER_IDS, producer_ids::encode(123_000)),
        ("offset-commit", state_files::KIND_GROUP_RECORD, record(&offset_commit)),
        ("group-metadata", state_files::KIND_GROUP_RECORD, record(&metadata)),
        ("offset-tombstone", state_files::KIND_GROUP_RECORD, record(&tombstone)),
        (
            "topics-json",
            state_files::KIND_METADATA_FILE,
            tern::broker::metadata_file::seal(br#"{"version":1,"topics":[]}"#),
        ),
        (
            "log-start-offset",
            state_files::KIND_LOG_START_OFFSET,
            tern::log::start_offset::encode(40),
        ),
        ("leader-epochs", state_files::KIND_LEADER_EPOCHS, leader_epochs_file()),
        ("replica-voters", state_files::KIND_REPLICA_VOTERS, replica_voters_file()),
        (
            "replica-state",
            state_files::KIND_REPLICA_STATE,
            tern::broker::partition::replica_state::encode(&tern::replication::HardState {
                epoch: 7,
                voted_for: Some(tern::replication::NodeId(2)),
            }),
        ),
    ];
    let mut seeds = Vec::new();
    for (name, kind, file) in files {
        let input = |file: &[u8]| [&[kind][..], file].concat();
        seeds.push((format!("{name}-torn"), input(&file[..file.len() / 2])));
        seeds.push((format!("{name}-flipped"), input(&flipped(&file, file.len() / 3, 5))));
        seeds.push((name.to_string(), input(&file)));
    }
    seeds
}

#[test]
fn state_files_seeds_are_generated() {
    write_or_check("state_files", state_files_seeds(), state_files::run);
}

/// Frames a broker sends: a vote, an append of two batches, an answer with a divergence
/// hint, all three coalesced, plus a torn and a flipped copy of the append; a hello; a
/// leadership transfer; leadership news; an append naming its voters batch.
fn peer_frame_seeds() -> Vec<(String, Vec<u8>)> {
    use tern::broker::partition::entries_of;
    use tern::broker::peer::{self, Addressed, LeadershipNews, PartitionMessage, PeerFrame};
    use tern::replication::{
        AppendHeader, AppendRequest, AppendResponse, DirectoryId, Divergence, LeadershipRequest,
        Message, NodeId, TimeoutNow, VoteRequest, Voter, VoterChange, VoterSet,
    };
    let mut payload = Vec::new();
    for (base_offset, records) in [(10i64, 2usize), (12, 1)] {
        let mut batch = batch(records, 16, 1_000).to_vec();
        tern::record_batch::patch_base_offset(&mut batch, base_offset, 3);
        payload.extend_from_slice(&batch);
    }
    let payload = bytes::Bytes::from(payload);
    let entries = entries_of(&payload).expect("whole batches");
    let header = AppendHeader {
        epoch: 3,
        leader: NodeId(1),
        prev_offset: 9,
        prev_epoch: 2,
        leader_commit: 8,
        leader_clock_ms: 41_250,
    };
    let voters = VoterSet::new(vec![
        Voter { node: NodeId(1), directory: Some(DirectoryId(0x1111)) },
        Voter { node: NodeId(3), directory: None },
    ])
    .expect("a voter set");
    // The second batch (one offset, at 12) is a voters batch.
    let voter_changes = vec![VoterChange { offset: 12, voters }];
    let append = Message::AppendRequest(AppendRequest {
        header,
        entries: entries.clone(),
        payload: payload.clone(),
        voter_changes: vec![],
    });
    let voters_append =
        Message::AppendRequest(AppendRequest { header, entries, payload, voter_changes });
    let vote = Message::VoteRequest(VoteRequest {
        epoch: 4,
        candidate: NodeId(2),
        log_end_offset: 13,
        last_epoch: 3,
        pre_vote: true,
        transfer: false,
    });
    let transfer_vote = Message::VoteRequest(VoteRequest {
        epoch: 4,
        candidate: NodeId(3),
        log_end_offset: 13,
        last_epoch: 3,
        pre_vote: false,
        transfer: true,
    });
    let timeout_now = Message::TimeoutNow(TimeoutNow { epoch: 3, leader: NodeId(1) });
    let asked = Message::LeadershipRequest(LeadershipRequest { epoch: 3, candidate: NodeId(3) });
    let answer = Message::AppendResponse(AppendResponse {
        epoch: 3,
        success: false,
        matched_end_offset: 0,
        durable_end_offset: 0,
        log_end_offset: 11,
        rejected_prev_offset: 9,
        divergence: Some(Divergence { epoch: 2, epoch_start_offset: 5 }),
        leader_clock_ms: 41_250,
    });
    let hello = peer::Hello {
        node_id: NodeId(2),
        kafka_host: "broker-2.example".into(),
        kafka_port: 9092,
        directory_id: *b"0123456789abcdef",
    };
    let addressed = |partition, message| Addressed {
        topic: "orders".into(),
        partition,
        message: PartitionMessage::Replica(message),
    };
    let news = LeadershipNews { epoch: 7, leader: NodeId(2), in_sync: vec![NodeId(2), NodeId(3)] };
    let news = Addressed {
        topic: "orders".into(),
        partition: 4,
        message: PartitionMessage::Leadership(news),
    };
    let frame = |messages| peer::encode(&PeerFrame { sender: NodeId(1), messages }).to_vec();
    let append_frame = frame(vec![addressed(0, append.clone())]);
    vec![
        ("vote".to_string(), frame(vec![addressed(0, vote.clone())])),
        ("append-torn".to_string(), append_frame[..append_frame.len() / 2].to_vec()),
        ("append-flipped".to_string(), flipped(&append_frame, 40, 3)),
        ("append".to_string(), append_frame),
        (
            "coalesced".to_string(),
            frame(vec![addressed(0, vote), addressed(1, append), addressed(2, answer)]),
        ),
        ("hello".to_string(), peer::encode_hello(&hello).to_vec()),
        (
            "transfer".to_string(),
            frame(vec![
                addressed(0, asked),
                addressed(0, timeout_now),
                addressed(0, transfer_vote),
            ]),
        ),
        ("leadership".to_string(), frame(vec![news])),
        ("voters".to_string(), frame(vec![addressed(0, voters_append)])),
    ]
}

#[test]
fn peer_frame_seeds_are_generated() {
    write_or_check("peer_frame", peer_frame_seeds(), peer_frame::run);
}

#[test]
fn segment_recovery_seeds_are_generated() {
    write_or_check("segment_recovery", segment_recovery_seeds(), segment_recovery::run);
}

#[test]
fn index_seeds_are_generated() {
    write_or_check("index", index_seeds(), index::run);
}

/// What the `segment_recovery` oracle must conclude about a two-segment log: pins the oracle
/// to verdicts derived by hand from the storage-fault policy (so the fuzz target's strong
/// properties are not vacuous), then runs the target's check, which holds the engine to it.
#[derive(Debug, PartialEq, Eq)]
enum TwoSegmentOutcome {
    Opens { served: usize, corrupt_from: Option<i64>, log_end: i64, kept: [Option<usize>; 2] },
    Refuses,
}

fn check_two_segments(first: &[u8], later_base: u32, later: Vec<u8>, expected: TwoSegmentOutcome) {
    use segment_recovery::{expected_log, SegmentFile, Verdict};
    let segments = [
        SegmentFile { base_offset: 0, bytes: first },
        SegmentFile { base_offset: i64::from(later_base), bytes: &later },
    ];
    let outcome = match expected_log(&segments, None) {
        Verdict::Refuses => TwoSegmentOutcome::Refuses,
        Verdict::Opens(log) => TwoSegmentOutcome::Opens {
            served: log.served.len(),
            corrupt_from: log.corrupt_from,
            log_end: log.log_end_offset,
            kept: [log.kept_bytes[0], log.kept_bytes[1]],
        },
    };
    assert_eq!(outcome, expected);
    let case = Case { later_segment: Some((later_base, later)), ..bare(first.to_vec()) };
    segment_recovery::run(&case.encode());
}

/// `later` holds one 3-record batch rebased to `batch_base`.
fn later_segment(batch_base: i64) -> Vec<u8> {
    let mut later = write_log(&[&[(3, 20)]]).segment;
    later[..8].copy_from_slice(&batch_base.to_be_bytes());
    later
}

#[test]
fn recovery_across_two_segments_follows_the_storage_fault_policy() {
    use TwoSegmentOutcome::{Opens, Refuses};
    // Five batches, offsets 0..13; the last batch (offset 12) is 1 record.
    let first = write_log(&[&[(1, 0)], &[(5, 40)], &[(2, 300)], &[(4, 10)], &[(1, 90)]]).segment;
    let (length, later_length) = (first.len(), later_segment(13).len());
    let torn = &first[..length - 9];
    let full = [Some(length), Some(later_length)];
    // A roll: the offsets continue across the boundary; both segments are served.
    let clean = Opens { served: 6, corrupt_from: None, log_end: 16, kept: full };
    check_two_segments(&first, 13, later_segment(13), clean);
    // The first segment's last batch torn, yet the next segment is intact: that batch was
    // synced before the roll, so this is detected loss, and nothing is truncated.
    let lost = Opens {
        served: 4,
        corrupt_from: Some(12),
        log_end: 16,
        kept: [Some(length - 9), Some(later_length)],
    };
    check_two_segments(torn, 13, later_segment(13), lost);
    // A gap between the segments (13..20 missing) with an intact batch behind it: loss at 13.
    let gap = Opens { served: 5, corrupt_from: Some(13), log_end: 23, kept: full };
    check_two_segments(&first, 20, later_segment(20), gap);
    // A later segment holding nothing at or above the log end: never durable, deleted.
    let deleted = Opens { served: 5, corrupt_from: None, log_end: 13, kept: [Some(length), None] };
    check_two_segments(&first, 10, later_segment(10), deleted);
    // A later segment named below the log end but holding the next batch: the segments
    // overlap, no order can be trusted, recovery refuses to open.
    check_two_segments(&first, 10, later_segment(13), Refuses);
}

#[test]
fn broker_seeds_are_generated() {
    write_or_check("broker", broker_seeds::seeds(), broker::run);
}

/// The reproducer of issue 12's abort (a 40,000-byte group id in OffsetCommit v8), kept in
/// `fuzz/regressions/broker/`, which `fuzz_corpus.rs` replays: the parser now refuses it.
#[test]
fn broker_known_crash_reproducer_is_committed() {
    let name = "offset-commit-v8-group-id-40000-bytes.bin";
    let regressions = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/regressions/broker");
    let bytes = broker_seeds::offset_commit_huge_group_id();
    if std::env::var_os("TERN_WRITE_FUZZ_SEEDS").is_some() {
        std::fs::create_dir_all(&regressions).expect("regressions directory");
        std::fs::write(regressions.join(name), &bytes).expect("write reproducer");
        return;
    }
    let committed = std::fs::read(regressions.join(name));
    assert_eq!(committed.ok(), Some(bytes), "{name} differs from its generator");
}

/// The `broker` target is deterministic: every seed gets the same answers on every run
/// (member ids and topic ids included), which is what lets the fuzzer learn them.
#[test]
fn broker_target_answers_every_seed_the_same_way_twice() {
    for (name, bytes) in broker_seeds::seeds() {
        let frames = broker::decode(&bytes);
        let answers = || format!("{:?}", block_on(broker::check(&frames)).responses);
        assert_eq!(answers(), answers(), "seed {name} answered differently");
    }
}
