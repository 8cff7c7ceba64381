//! Generated request sequences, sent to Tern and to Apache Kafka 4.4.0 alike: proptest draws a
//! topic (partition count, configs) and a sequence of operations on it — produces at several
//! versions and acks, with a wrong CRC now and then, to partitions that may not exist;
//! fetches from any offset with any size limit; list-offsets by any timestamp; metadata;
//! config descriptions; partition growth — and every answer must equal Kafka's after the
//! documented normalisations (`common::differential`). A failing case is shrunk to a short
//! sequence and printed with both answers side by side.

mod common;

use bytes::Bytes;
use kafka_protocol::records::Compression;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestError, TestRunner};

use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::offset_for_leader_epoch_request::{
    OffsetForLeaderPartition, OffsetForLeaderTopic,
};
use kafka_protocol::messages::*;

use common::differential::*;
use common::kafka_peer::KafkaPeer;
use common::{test_dir, TernServer};

const TIMESTAMP_MS: i64 = 1_700_000_000_000;
/// Where the CRC32C of a v2 batch sits (after base offset, length, leader epoch, magic).
const CRC_POSITION: usize = 17;

#[derive(Debug, Clone)]
enum Operation {
    Produce { partition: i32, version: i16, acks: i16, records: usize, damage: Damage, codec: u8 },
    Fetch { partition: i32, version: i16, offset: i64, max_bytes: i32, read_committed: bool },
    ListOffsets { partition: i32, version: i16, timestamp: i64 },
    Metadata { version: i16, with_unknown: bool },
    DescribeConfigs { version: i16 },
    CreatePartitions { version: i16, count: i32 },
    OffsetForLeaderEpoch { partition: i32, version: i16, current_epoch: i32, epoch: i32 },
}

/// What a produced batch carries besides its records.
#[derive(Debug, Clone, Copy)]
enum Damage {
    None,
    /// A flipped bit inside the CRC32C.
    Crc,
    /// A non-zero base offset (outside the CRC: clients always send 0).
    BaseOffset,
}

#[derive(Debug, Clone)]
struct Sequence {
    partitions: i32,
    configs: Vec<(&'static str, &'static str)>,
    operations: Vec<Operation>,
}

fn operation() -> impl Strategy<Value = Operation> {
    let partition = 0..4i32;
    prop_oneof![
        4 => (partition.clone(), prop::sample::select(vec![3i16, 7, 9, 11]),
              prop::sample::select(vec![-1i16, 1]), 1..6usize, damage(), 0..5u8)
            .prop_map(|(partition, version, acks, records, damage, codec)| Operation::Produce {
                partition, version, acks, records, damage, codec,
            }),
        3 => (partition.clone(), prop::sample::select(vec![4i16, 11, 12]), -2..14i64,
              prop::sample::select(vec![1i32, 100, 1 << 20]), any::<bool>())
            .prop_map(|(partition, version, offset, max_bytes, read_committed)| Operation::Fetch {
                partition, version, offset, max_bytes, read_committed,
            }),
        2 => (partition, prop::sample::select(vec![1i16, 5, 7, 8, 9]),
              prop_oneof![Just(-1i64), Just(-2), Just(-3), Just(-4), Just(-5), Just(-6), Just(-7),
                          (0..12i64).prop_map(|k| TIMESTAMP_MS + k)])
            .prop_map(|(partition, version, timestamp)| Operation::ListOffsets {
                partition, version, timestamp,
            }),
        1 => (prop::sample::select(vec![4i16, 9, 12]), any::<bool>())
            .prop_map(|(version, with_unknown)| Operation::Metadata { version, with_unknown }),
        1 => prop::sample::select(vec![1i16, 4]).prop_map(|version| Operation::DescribeConfigs { version }),
        1 => (prop::sample::select(vec![0i16, 3]), 1..5i32)
            .prop_map(|(version, count)| Operation::CreatePartitions { version, count }),
        2 => (0..4i32, 2..5i16, prop::sample::select(vec![-2i32, -1, 0, 1]),
              prop::sample::select(vec![-1i32, 0, 1, 5]))
            .prop_map(|(partition, version, current_epoch, epoch)| {
                Operation::OffsetForLeaderEpoch { partition, version, current_epoch, epoch }
            }),
    ]
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![8 => Just(Damage::None), 1 => Just(Damage::Crc), 1 => Just(Damage::BaseOffset)]
}

fn sequence() -> impl Strategy<Value = Sequence> {
    let configs = prop::sample::subsequence(
        vec![
            ("retention.ms", "3600000"),
            ("max.message.bytes", "150"),
            ("cleanup.policy", "delete"),
            ("segment.bytes", "1048576"),
        ],
        0..=2,
    );
    (1..4i32, configs, prop::collection::vec(operation(), 1..12))
        .prop_map(|(partitions, configs, operations)| Sequence { partitions, configs, operations })
}

/// A batch of `records` records with timestamps from `first_timestamp_ms`, compressed with
/// codec `codec` (0 none, then gzip, snappy, lz4, zstd), damaged as `damage` says.
fn produced_batch(first_timestamp_ms: i64, records: usize, damage: Damage, codec: u8) -> Bytes {
    let values: Vec<String> = (0..records).map(|index| format!("value-{index}")).collect();
    let values: Vec<&str> = values.iter().map(String::as_str).collect();
    let compression = match codec {
        1 => Compression::Gzip,
        2 => Compression::Snappy,
        3 => Compression::Lz4,
        4 => Compression::Zstd,
        _ => Compression::None,
    };
    let mut bytes = compressed_batch(first_timestamp_ms, &values, compression).to_vec();
    match damage {
        Damage::None => {}
        Damage::Crc => bytes[CRC_POSITION] ^= 0x40,
        Damage::BaseOffset => bytes[..8].copy_from_slice(&5i64.to_be_bytes()),
    }
    Bytes::from(bytes)
}

fn run_operation(pair: &mut Pair, topic: &str, index: usize, operation: &Operation) {
    let case = format!("operation {index}: {operation:?}");
    match *operation {
        Operation::Produce { partition, version, acks, records, damage, codec } => {
            let first_timestamp_ms = TIMESTAMP_MS + index as i64;
            let records = produced_batch(first_timestamp_ms, records, damage, codec);
            let request = produce_request(topic, partition, acks, records);
            pair.compare(&case, version, &request, normalize_produce);
        }
        Operation::Fetch { partition, version, offset, max_bytes, read_committed } => {
            let request = fetch_partition_request(topic, partition, offset, max_bytes, (0, 1))
                .with_isolation_level(i8::from(read_committed));
            pair.compare(&case, version, &request, normalize_fetch);
        }
        Operation::ListOffsets { partition, version, timestamp } => {
            let request = list_offsets_partition_request(topic, partition, timestamp);
            pair.compare(&case, version, &request, normalize_list_offsets);
        }
        Operation::Metadata { version, with_unknown } => {
            let unknown = format!("{topic}-unknown");
            let names: Vec<&str> =
                if with_unknown { vec![topic, unknown.as_str()] } else { vec![topic] };
            let request = metadata_request(Some(&names), false);
            pair.compare(&case, version, &request, normalize_metadata);
        }
        Operation::DescribeConfigs { version } => {
            let resource = DescribeConfigsResource::default()
                .with_resource_type(2)
                .with_resource_name(text(topic));
            let request = DescribeConfigsRequest::default().with_resources(vec![resource]);
            pair.compare(&case, version, &request, normalize_describe_configs);
        }
        Operation::OffsetForLeaderEpoch { partition, version, current_epoch, epoch } => {
            let asked = OffsetForLeaderPartition::default()
                .with_partition(partition)
                .with_current_leader_epoch(current_epoch)
                .with_leader_epoch(epoch);
            let topic = OffsetForLeaderTopic::default()
                .with_topic(name(topic))
                .with_partitions(vec![asked]);
            let request = OffsetForLeaderEpochRequest::default()
                .with_replica_id(BrokerId(-1))
                .with_topics(vec![topic]);
            pair.compare(&case, version, &request, |response| response.throttle_time_ms = 0);
        }
        Operation::CreatePartitions { version, count } => {
            let growth = CreatePartitionsTopic::default().with_name(name(topic)).with_count(count);
            let request = CreatePartitionsRequest::default()
                .with_topics(vec![growth])
                .with_timeout_ms(30_000);
            pair.compare(&case, version, &request, normalize_create_partitions);
            wait_for_leaders(pair, topic);
        }
    }
}

/// Runs one generated sequence on a fresh topic; the mismatches are the case's failure.
fn run_sequence(pair: &mut Pair, case_number: usize, sequence: &Sequence) -> Result<(), String> {
    let topic = format!("generated-{case_number}");
    let request = create_request(&topic, sequence.partitions, &sequence.configs);
    pair.compare("CreateTopics", 7, &request, normalize_create);
    wait_for_leaders(pair, &topic);
    for (index, operation) in sequence.operations.iter().enumerate() {
        run_operation(pair, &topic, index, operation);
    }
    // A timeout of 0 makes Kafka answer REQUEST_TIMED_OUT while it deletes anyway (Tern deletes
    // before answering: a documented difference); admin clients send 30-60 s.
    let deleted =
        DeleteTopicsRequest::default().with_topic_names(vec![name(&topic)]).with_timeout_ms(30_000);
    pair.compare("DeleteTopics", 4, &deleted, normalize_delete);
    match std::mem::take(&mut pair.mismatches) {
        mismatches if mismatches.is_empty() => Ok(()),
        mismatches => Err(mismatches.join("\n")),
    }
}

#[test]
fn generated_sequences_are_answered_like_apache_kafka() {
    let directory = test_dir("differential-generated");
    let kafka = KafkaPeer::start(&directory.join("kafka"));
    let mut tern = TernServer::start(&directory.join("tern"), &["--shards", "2"]);
    let pair = Pair::connect(&tern.bootstrap(), &kafka.bootstrap());
    let cases: u32 = std::env::var("TERN_DIFFERENTIAL_CASES")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(24);
    let config =
        Config { cases, max_shrink_iters: 64, failure_persistence: None, ..Config::default() };
    let mut runner = TestRunner::new(config);
    // The runner takes a `Fn`; the pair and the case count are this test's only state.
    let state = std::cell::RefCell::new((pair, 0usize));
    let outcome = runner.run(&sequence(), |sequence| {
        let (pair, case_number) = &mut *state.borrow_mut();
        *case_number += 1;
        run_sequence(pair, *case_number, &sequence).map_err(TestCaseError::fail)
    });
    tern.stop();
    drop(kafka);
    match outcome {
        Ok(()) => {}
        Err(TestError::Fail(reason, sequence)) => {
            panic!("Tern and Kafka differ on {sequence:#?}\n\n{reason}")
        }
        Err(error) => panic!("{error}"),
    }
}
