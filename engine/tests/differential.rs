//! Differential tests: the same requests to Tern and to Apache Kafka 4.4.0 (single-node KRaft,
//! started by `benches/peers/kafka.sh`), responses decoded and compared field by field.
//!
//! Fields allowed to differ are masked by `normalize` and listed in docs/compatibility.md:
//! identities (cluster id, node ids, hosts, ports, topic ids), throttle times, free-text error
//! messages, and what only a broker with features or replicas reports. Everything else — error
//! codes above all, offsets, watermarks, the record bytes served — must be equal. A mismatch
//! prints both responses side by side.

mod common;

use std::thread::sleep;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::create_partitions_request::{
    CreatePartitionsAssignment, CreatePartitionsTopic,
};
use kafka_protocol::messages::create_topics_request::CreatableReplicaAssignment;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::*;
use kafka_protocol::records::*;

use common::differential::*;
use common::kafka_peer::KafkaPeer;
use common::{test_dir, TernServer};

// ---- helpers ---------------------------------------------------------------------------------

// ---- the cases -------------------------------------------------------------------------------

/// Tern's ranges may stop below Kafka's newest version but must start at Kafka's floor.
fn api_versions(pair: &mut Pair) {
    for version in 0..=4 {
        let (tern, kafka) = pair.both(
            version,
            &ApiVersionsRequest::default()
                .with_client_software_name(text("tern-differential"))
                .with_client_software_version(text("1")),
        );
        pair.check_equal(
            &format!("ApiVersions error (v{version})"),
            &tern.error_code,
            &kafka.error_code,
        );
        for ours in &tern.api_keys {
            let theirs = kafka.api_keys.iter().find(|api| api.api_key == ours.api_key);
            let shape = theirs.map(|api| (api.min_version, ours.max_version.min(api.max_version)));
            pair.check_equal(
                &format!("ApiVersions range of key {} (v{version})", ours.api_key),
                &Some((ours.min_version, ours.max_version)),
                &shape,
            );
        }
    }
}

fn metadata(pair: &mut Pair) {
    let created = create_request("metadata-a", 2, &[]);
    pair.compare("CreateTopics metadata-a", 7, &created, normalize_create);
    wait_for_leaders(pair, "metadata-a");
    for version in [1, 4, 9, 12] {
        // Before v4 the field does not exist (and means true).
        let auto_create = version < 4;
        pair.compare(
            "Metadata all topics",
            version,
            &metadata_request(None, auto_create),
            normalize_metadata,
        );
        pair.compare(
            "Metadata no topics",
            version,
            &metadata_request(Some(&[]), auto_create),
            normalize_metadata,
        );
        pair.compare(
            "Metadata known topic",
            version,
            &metadata_request(Some(&["metadata-a"]), auto_create),
            normalize_metadata,
        );
        if version >= 4 {
            pair.compare(
                "Metadata unknown topic, no auto-create",
                version,
                &metadata_request(Some(&["metadata-unknown"]), false),
                normalize_metadata,
            );
        }
    }
    pair.compare(
        "Metadata v0 empty list means all",
        0,
        &metadata_request(Some(&[]), true),
        normalize_metadata,
    );
    // Auto-creation: Kafka's first answer is UNKNOWN_TOPIC_OR_PARTITION while its controller
    // creates the topic; Tern creates it before answering and returns it (an accepted
    // difference, docs/compatibility.md). Afterwards both must report the same topic.
    let _ = pair.both(9, &metadata_request(Some(&["metadata-auto"]), true));
    wait_for_leaders(pair, "metadata-auto");
    pair.compare(
        "Metadata after auto-create",
        9,
        &metadata_request(Some(&["metadata-auto"]), false),
        normalize_metadata,
    );
}

fn create_topics(pair: &mut Pair) {
    for version in [2, 5, 7] {
        let topic = format!("create-{version}");
        pair.compare(
            "CreateTopics valid",
            version,
            &create_request(&topic, 3, &[]),
            normalize_create,
        );
        pair.compare(
            "CreateTopics existing",
            version,
            &create_request(&topic, 3, &[]),
            normalize_create,
        );
        pair.compare(
            "CreateTopics invalid name",
            version,
            &create_request("bad/name", 1, &[]),
            normalize_create,
        );
        let bad_value = create_request(&format!("{topic}-x"), 1, &[("retention.ms", "abc")]);
        pair.compare("CreateTopics bad config value", version, &bad_value, normalize_create);
        let unknown = create_request(&format!("{topic}-y"), 1, &[("no.such.config", "1")]);
        pair.compare("CreateTopics unknown config", version, &unknown, normalize_create);
        let zero = create_request(&format!("{topic}-z"), 0, &[]);
        pair.compare("CreateTopics zero partitions", version, &zero, normalize_create);
        let mut replicated = create_request(&format!("{topic}-r"), 1, &[]);
        replicated.topics[0].replication_factor = 3;
        pair.compare("CreateTopics replication factor 3", version, &replicated, normalize_create);
        let mut validate = create_request(&format!("{topic}-v"), 1, &[]);
        validate.validate_only = true;
        pair.compare("CreateTopics validate_only", version, &validate, normalize_create);
        pair.compare(
            "Metadata after validate_only",
            9,
            &metadata_request(Some(&[&format!("{topic}-v")]), false),
            normalize_metadata,
        );
        wait_for_leaders(pair, &topic);
        one_name_twice(pair, version);
    }
    manual_assignments(pair);
}

/// Every numeric topic config Tern validates, probed around each plausible bound: Kafka's
/// minimum and maximum (and one past each) must be Tern's. Not `internal.segment.bytes`:
/// Kafka 4.4.0 takes any Int for it from any client (measured), Tern only from a broker
/// started with `--internal-topic-configs` (docs/compatibility.md).
fn topic_config_bounds(pair: &mut Pair) {
    const CONFIGS: [&str; 15] = [
        "delete.retention.ms",
        "file.delete.delay.ms",
        "flush.messages",
        "flush.ms",
        "index.interval.bytes",
        "max.compaction.lag.ms",
        "max.message.bytes",
        "min.cleanable.dirty.ratio",
        "min.compaction.lag.ms",
        "min.insync.replicas",
        "retention.bytes",
        "retention.ms",
        "segment.bytes",
        "segment.index.bytes",
        "segment.ms",
    ];
    const VALUES: [&str; 18] = [
        "-2",
        "-1",
        "-0.1",
        "0",
        "1",
        "1.1",
        "3",
        "4",
        "13",
        "14",
        "1048575",
        "1048576",
        "2147483647",
        "2147483648",
        "9223372036854775807",
        "9223372036854775808",
        "1e3",
        " 5",
    ];
    for config in CONFIGS {
        for value in VALUES {
            let mut request = create_request("config-bounds", 1, &[(config, value)]);
            request.validate_only = true;
            let case = format!("CreateTopics {config}={value}");
            pair.compare(&case, 7, &request, normalize_create);
        }
    }
}

/// A name listed twice is refused (INVALID_REQUEST, once) and not created; the other topics
/// of the request are created, and answered first.
fn one_name_twice(pair: &mut Pair, version: i16) {
    let twice = format!("create-twice-{version}");
    let mut request = create_request(&format!("create-once-{version}"), 1, &[]);
    let duplicate = create_request(&twice, 1, &[]).topics.remove(0);
    request.topics.push(duplicate.clone());
    request.topics.push(duplicate);
    pair.compare("CreateTopics one name twice", version, &request, normalize_create);
    pair.compare(
        "Metadata after one name twice",
        9,
        &metadata_request(Some(&[&twice]), false),
        normalize_metadata,
    );
}

fn manual_assignments(pair: &mut Pair) {
    let assigned = |topic: &str, partitions: &[i32], brokers: Vec<i32>, count: i32| {
        let mut request = create_request(topic, count, &[]);
        request.topics[0].replication_factor = if count == -1 { -1 } else { 1 };
        for partition in partitions {
            let mut assignment = CreatableReplicaAssignment::default();
            assignment.partition_index = *partition;
            assignment.broker_ids = brokers.iter().map(|id| BrokerId(*id)).collect();
            request.topics[0].assignments.push(assignment);
        }
        request
    };
    pair.compare_each(
        "CreateTopics manual assignment to this broker",
        7,
        |node| assigned("assigned-ok", &[0, 1, 2], vec![node], -1),
        normalize_create,
    );
    pair.compare_each(
        "CreateTopics manual assignment to an unknown broker",
        7,
        |node| assigned("assigned-unknown", &[0], vec![node + 100], -1),
        normalize_create,
    );
    pair.compare_each(
        "CreateTopics manual assignment with a gap",
        7,
        |node| assigned("assigned-gap", &[0, 2], vec![node], -1),
        normalize_create,
    );
    pair.compare_each(
        "CreateTopics manual assignment and a partition count",
        7,
        |node| assigned("assigned-both", &[0], vec![node], 1),
        normalize_create,
    );
    pair.compare_each(
        "CreateTopics manual assignment, a broker twice",
        7,
        |node| assigned("assigned-twice", &[0], vec![node, node], -1),
        normalize_create,
    );
    wait_for_leaders(pair, "assigned-ok");
}

/// `(topic, count, assignments)` per topic; `None` assignments are sent as null.
fn partitions_request(
    topics: &[(&str, i32, Option<Vec<i32>>)],
    validate_only: bool,
) -> CreatePartitionsRequest {
    let topic = |(topic, count, assignments): &(&str, i32, Option<Vec<i32>>)| {
        let assignment = |brokers: &Vec<i32>| {
            let broker_ids = brokers.iter().map(|id| BrokerId(*id)).collect();
            CreatePartitionsAssignment::default().with_broker_ids(broker_ids)
        };
        CreatePartitionsTopic::default()
            .with_name(name(topic))
            .with_count(*count)
            .with_assignments(assignments.as_ref().map(|brokers| vec![assignment(brokers)]))
    };
    CreatePartitionsRequest::default()
        .with_topics(topics.iter().map(topic).collect())
        .with_timeout_ms(30_000)
        .with_validate_only(validate_only)
}

fn create_partitions(pair: &mut Pair) {
    for version in [0, 1, 2, 3] {
        let topic = format!("partitions-{version}");
        let topic = topic.as_str();
        pair.compare(
            "CreateTopics for CreatePartitions",
            7,
            &create_request(topic, 1, &[]),
            normalize_create,
        );
        wait_for_leaders(pair, topic);
        let case = |what: &str| format!("CreatePartitions {what}");
        let check = |pair: &mut Pair, what: &str, request: &CreatePartitionsRequest| {
            pair.compare(&case(what), version, request, normalize_create_partitions);
        };
        check(pair, "validate_only", &partitions_request(&[(topic, 3, None)], true));
        wait_for_partitions(pair, topic, 1);
        check(pair, "grow", &partitions_request(&[(topic, 3, None)], false));
        wait_for_partitions(pair, topic, 3);
        let metadata = metadata_request(Some(&[topic]), false);
        pair.compare("Metadata after CreatePartitions", 9, &metadata, normalize_metadata);
        check(pair, "same count", &partitions_request(&[(topic, 3, None)], false));
        check(pair, "shrink", &partitions_request(&[(topic, 2, None)], false));
        check(pair, "unknown topic", &partitions_request(&[("partitions-none", 2, None)], false));
        let twice = partitions_request(&[(topic, 4, None), (topic, 5, None)], false);
        check(pair, "duplicate names", &twice);
        let mixed = partitions_request(&[("partitions-none", 2, None), (topic, 1, None)], false);
        check(pair, "two refusals", &mixed);
    }
    manual_partition_assignments(pair);
}

fn manual_partition_assignments(pair: &mut Pair) {
    let topic = "partitions-assigned";
    pair.compare(
        "CreateTopics for CreatePartitions",
        7,
        &create_request(topic, 1, &[]),
        normalize_create,
    );
    wait_for_leaders(pair, topic);
    let assigned = |brokers: Vec<i32>, count: i32| {
        move |node: i32| {
            let brokers = brokers.iter().map(|id| id + node).collect();
            partitions_request(&[(topic, count, Some(brokers))], false)
        }
    };
    let cases = [
        ("an unknown broker", assigned(vec![100], 2)),
        ("this broker twice", assigned(vec![0, 0], 2)),
        ("too few assignments", assigned(vec![0], 3)),
        ("this broker", assigned(vec![0], 2)),
    ];
    for (what, build) in cases {
        let case = format!("CreatePartitions manual assignment to {what}");
        pair.compare_each(&case, 3, build, normalize_create_partitions);
    }
    wait_for_partitions(pair, topic, 2);
    let metadata = metadata_request(Some(&[topic]), false);
    pair.compare("Metadata after a manual assignment", 9, &metadata, normalize_metadata);
}

fn delete_topics(pair: &mut Pair) {
    pair.compare(
        "CreateTopics delete-me",
        7,
        &create_request("delete-me", 1, &[]),
        normalize_create,
    );
    wait_for_leaders(pair, "delete-me");
    for (case, topic) in [("DeleteTopics existing", "delete-me"), ("DeleteTopics unknown", "nope")]
    {
        let mut request = DeleteTopicsRequest::default();
        request.topic_names.push(name(topic));
        request.timeout_ms = 30_000;
        pair.compare(case, 4, &request, normalize_delete);
    }
}

const TIMESTAMP_MS: i64 = 1_700_000_000_000;

fn produce(pair: &mut Pair) {
    pair.compare(
        "CreateTopics produce-t",
        7,
        &create_request("produce-t", 1, &[]),
        normalize_create,
    );
    wait_for_leaders(pair, "produce-t");
    for (version, acks) in [(3, -1), (7, 1), (9, -1), (12, -1)] {
        let request = produce_request("produce-t", 0, acks, batch(TIMESTAMP_MS, &["a", "b"]));
        pair.compare(&format!("Produce acks={acks}"), version, &request, normalize_produce);
    }
    let mut corrupt = BytesMut::from(&batch(TIMESTAMP_MS, &["c"])[..]);
    let last = corrupt.len() - 1;
    corrupt[last] ^= 0x01;
    let request = produce_request("produce-t", 0, -1, corrupt.freeze());
    pair.compare("Produce wrong CRC", 9, &request, normalize_produce);
    let request = produce_request("produce-t", 7, -1, batch(TIMESTAMP_MS, &["d"]));
    pair.compare("Produce unknown partition", 9, &request, normalize_produce);
    let request = produce_request("produce-unknown", 0, -1, batch(TIMESTAMP_MS, &["e"]));
    pair.compare("Produce unknown topic", 9, &request, normalize_produce);
    let request = produce_request("produce-t", 0, 2, batch(TIMESTAMP_MS, &["f"]));
    pair.compare("Produce acks=2", 9, &request, normalize_produce);
    let big = "x".repeat(1_100_000);
    let request = produce_request("produce-t", 0, -1, batch(TIMESTAMP_MS, &[&big]));
    pair.compare("Produce larger than max.message.bytes", 9, &request, normalize_produce);
    // acks=0: no response at all; the next answer must be that of the next request.
    let request = produce_request("produce-t", 0, 0, batch(TIMESTAMP_MS + 10, &["g"]));
    let (tern, kafka) = (pair.tern.encode(9, &request), pair.kafka.encode(9, &request));
    pair.tern.send_raw(&tern);
    pair.kafka.send_raw(&kafka);
    pair.compare(
        "ListOffsets latest after acks=0",
        7,
        &list_offsets_request("produce-t", -1),
        normalize_list_offsets,
    );
}

fn fetch(pair: &mut Pair) {
    pair.compare("CreateTopics fetch-t", 7, &create_request("fetch-t", 1, &[]), normalize_create);
    wait_for_leaders(pair, "fetch-t");
    for index in 0..3 {
        let values: Vec<String> = (0..50).map(|record| format!("value-{index}-{record}")).collect();
        let values: Vec<&str> = values.iter().map(String::as_str).collect();
        let request = produce_request("fetch-t", 0, -1, batch(TIMESTAMP_MS + index * 100, &values));
        pair.compare("Produce to fetch-t", 9, &request, normalize_produce);
    }
    for version in [4, 11, 12] {
        pair.compare(
            "Fetch from 0",
            version,
            &fetch_request("fetch-t", 0, 1 << 20, (0, 1)),
            normalize_fetch,
        );
        pair.compare(
            "Fetch from the middle of a batch",
            version,
            &fetch_request("fetch-t", 75, 1 << 20, (0, 1)),
            normalize_fetch,
        );
        pair.compare(
            "Fetch out of range",
            version,
            &fetch_request("fetch-t", 1_000, 1 << 20, (0, 1)),
            normalize_fetch,
        );
        pair.compare(
            "Fetch max_bytes below one batch",
            version,
            &fetch_request("fetch-t", 0, 100, (0, 1)),
            normalize_fetch,
        );
        pair.compare(
            "Fetch at the end with min_bytes and a wait",
            version,
            &fetch_request("fetch-t", 150, 1 << 20, (200, 1)),
            normalize_fetch,
        );
    }
    fetch_sessions(pair);
    fetch_limits_across_partitions(pair);
    fetch_min_bytes_at_the_limit(pair);
}

/// KIP-227 as Kafka's FetchManager reads it: epoch 0 (a new session) and -1 (sessionless)
/// are full fetches whatever the session id; any other epoch names a session, which Tern
/// never has (kafka-go sends id -1 with epoch -1, issue 13).
fn fetch_sessions(pair: &mut Pair) {
    let cases = [(0, -1), (0, 0), (-1, -1), (123, -1), (123, 0), (0, 1), (123, 1), (0, -2)];
    for version in [7, 11, 12] {
        for (session_id, session_epoch) in cases {
            let mut request = fetch_request("fetch-t", 0, 1 << 20, (0, 1));
            request.session_id = session_id;
            request.session_epoch = session_epoch;
            let case = format!("Fetch session id {session_id} epoch {session_epoch}");
            pair.compare(&case, version, &request, normalize_fetch);
        }
    }
}

/// KIP-74 across partitions, as Kafka's `readFromLog`: only until the first non-empty
/// partition may a batch exceed the limits; after it, a partition whose first batch is
/// larger than what is left gets nothing.
fn fetch_limits_across_partitions(pair: &mut Pair) {
    let create = create_request("fetch-two", 2, &[]);
    pair.compare("CreateTopics fetch-two", 7, &create, normalize_create);
    wait_for_partitions(pair, "fetch-two", 2);
    let small: Vec<String> = (0..3).map(|record| format!("small-{record}")).collect();
    let large: Vec<String> =
        (0..40).map(|record| format!("large-{record}-{}", "x".repeat(50))).collect();
    for (partition, values) in [(0, &small), (1, &large)] {
        let values: Vec<&str> = values.iter().map(String::as_str).collect();
        let request = produce_request("fetch-two", partition, -1, batch(TIMESTAMP_MS, &values));
        pair.compare("Produce to fetch-two", 9, &request, normalize_produce);
    }
    for (first, second, max_bytes) in [(0, 1, 1 << 20), (0, 1, 600), (1, 0, 600), (0, 1, 150)] {
        let mut request = fetch_request("fetch-two", 0, 500, (0, 1));
        request.max_bytes = max_bytes;
        let template = request.topics[0].partitions[0].clone();
        request.topics[0].partitions =
            vec![template.clone().with_partition(first), template.with_partition(second)];
        for version in [4, 12] {
            let case = format!("Fetch partitions {first},{second} (500 each, {max_bytes} in all)");
            pair.compare(&case, version, &request, normalize_fetch);
        }
    }
}

/// `min_bytes` equal to `max_bytes`, the limit inside the second batch: Kafka serves exactly
/// the limit (the second batch cut short), so `min_bytes` is met and it answers at once. Tern
/// serves whole batches, less than the limit, and must answer at once too, not wait out
/// `max_wait_ms` (kafka-go's compaction test asks 200 and 200, issue 13). Compared: the
/// partition's error and watermark, whether data came, and whether the answer came early.
fn fetch_min_bytes_at_the_limit(pair: &mut Pair) {
    const MAX_WAIT_MS: i32 = 10_000;
    let whole: FetchResponse = pair.tern.call(12, &fetch_request("fetch-t", 0, 1 << 20, (0, 1)));
    let records = whole.responses[0].partitions[0].records.clone().unwrap_or_default();
    let first_batch_bytes =
        12 + i32::from_be_bytes([records[8], records[9], records[10], records[11]]);
    let limit = first_batch_bytes + first_batch_bytes / 2;
    let request = fetch_request("fetch-t", 0, limit, (MAX_WAIT_MS, limit));
    for version in [4, 12] {
        let answer = |connection: &mut common::kafka::Connection| {
            let start = Instant::now();
            let response: FetchResponse = connection.call(version, &request);
            let early = start.elapsed() < Duration::from_millis(MAX_WAIT_MS as u64 / 2);
            let partition = &response.responses[0].partitions[0];
            let has_data = partition.records.as_ref().is_some_and(|bytes| !bytes.is_empty());
            (partition.error_code, partition.high_watermark, has_data, early)
        };
        let (tern, kafka) = (answer(&mut pair.tern), answer(&mut pair.kafka));
        let case = format!(
            "Fetch min_bytes = max_bytes = {limit}: (error, watermark, data, early) (v{version})"
        );
        pair.check_equal(&case, &tern, &kafka);
    }
}

/// One batch of `values` from an idempotent producer, sequences from `first_sequence`.
fn idempotent_batch(producer: (i64, i16), first_sequence: i32, values: &[&str]) -> Bytes {
    let producer = Producer { id: producer.0, epoch: producer.1, first_sequence };
    encode_batch(TIMESTAMP_MS, values, Compression::None, producer, false)
}

/// InitProducerId, then duplicates, gaps, epoch bumps and fencing of an idempotent producer:
/// same error codes and base offsets as Kafka (each broker with the id it handed out).
fn idempotent_produce(pair: &mut Pair) {
    let created = create_request("idempotent-t", 1, &[]);
    pair.compare("CreateTopics idempotent-t", 7, &created, normalize_create);
    wait_for_leaders(pair, "idempotent-t");
    let init = InitProducerIdRequest::default().with_transaction_timeout_ms(60_000);
    for version in 0..=5 {
        pair.compare("InitProducerId", version, &init, normalize_init_producer_id);
    }
    let (tern_init, kafka_init) = pair.both(4, &init);
    let ids = (tern_init.producer_id.0, kafka_init.producer_id.0);
    let cases: [(&str, i16, i32, &[&str]); 9] = [
        ("first batch", 0, 0, &["a", "b"]),
        ("retry of the first batch", 0, 0, &["a", "b"]),
        ("next batch", 0, 2, &["c"]),
        ("retry of an older batch", 0, 0, &["a", "b"]),
        ("sequence gap", 0, 5, &["d"]),
        ("new epoch not at sequence 0", 1, 3, &["e"]),
        ("new epoch at sequence 0", 1, 0, &["f"]),
        ("stale epoch", 0, 3, &["g"]),
        ("retry in the new epoch", 1, 0, &["f"]),
    ];
    for (case, epoch, sequence, values) in cases {
        let request = |producer_id| {
            let records = idempotent_batch((producer_id, epoch), sequence, values);
            produce_request("idempotent-t", 0, -1, records)
        };
        let mut tern = pair.tern.call(9, &request(ids.0));
        let mut kafka = pair.kafka.call(9, &request(ids.1));
        normalize_produce(&mut tern);
        normalize_produce(&mut kafka);
        pair.check_equal(&format!("Idempotent produce: {case} (v9)"), &tern, &kafka);
    }
    // A producer neither broker has state for is accepted at any sequence.
    let request = produce_request("idempotent-t", 0, -1, idempotent_batch((4242, 3), 17, &["h"]));
    pair.compare("Idempotent produce: unknown producer", 9, &request, normalize_produce);
}

fn list_offsets(pair: &mut Pair) {
    // fetch-t holds three batches of 50 records, timestamps TIMESTAMP_MS + 0/100/200 + i.
    let cases = [
        ("earliest", -2),
        ("latest", -1),
        ("by timestamp inside the second batch", TIMESTAMP_MS + 110),
        ("by timestamp before everything", 0),
        ("by timestamp after everything", TIMESTAMP_MS + 1_000_000),
    ];
    for version in [1, 5, 7, 9] {
        for (case, timestamp) in cases {
            pair.compare(
                &format!("ListOffsets {case}"),
                version,
                &list_offsets_request("fetch-t", timestamp),
                normalize_list_offsets,
            );
        }
        if version >= 7 {
            pair.compare(
                "ListOffsets max-timestamp",
                version,
                &list_offsets_request("fetch-t", -3),
                normalize_list_offsets,
            );
        }
    }
    pair.compare(
        "ListOffsets unknown topic",
        7,
        &list_offsets_request("nope", -1),
        normalize_list_offsets,
    );
}

/// One uncompressed batch whose records carry the given timestamps, in that order.
fn batch_with_timestamps(timestamps_ms: &[i64]) -> Bytes {
    let values: Vec<String> = timestamps_ms.iter().map(|time_ms| format!("at-{time_ms}")).collect();
    let values: Vec<&str> = values.iter().map(String::as_str).collect();
    encode_batch_at(timestamps_ms, &values, Compression::None, Producer::PLAIN, false)
}

/// KIP-734's max timestamp when the newest record is not a batch's last, and when two
/// batches share it: the first record that carries it.
fn max_timestamp_out_of_order(pair: &mut Pair) {
    let create = create_request("maxts-t", 1, &[]);
    pair.compare("CreateTopics maxts-t", 7, &create, normalize_create);
    wait_for_leaders(pair, "maxts-t");
    let newest_ms = TIMESTAMP_MS + 50;
    let batches = [
        vec![TIMESTAMP_MS + 5, newest_ms, TIMESTAMP_MS + 10, newest_ms, TIMESTAMP_MS + 20],
        vec![TIMESTAMP_MS + 30, newest_ms],
    ];
    for timestamps in batches {
        let request = produce_request("maxts-t", 0, -1, batch_with_timestamps(&timestamps));
        pair.compare("Produce out-of-order timestamps", 9, &request, normalize_produce);
    }
    for timestamp in [-3, newest_ms, TIMESTAMP_MS + 7] {
        let request = list_offsets_request("maxts-t", timestamp);
        let case = format!("ListOffsets {timestamp} among out-of-order timestamps");
        pair.compare(&case, 9, &request, normalize_list_offsets);
    }
}

fn describe_configs(pair: &mut Pair) {
    let created = create_request("configs-t", 1, &[("retention.ms", "3600000")]);
    pair.compare("CreateTopics configs-t", 7, &created, normalize_create);
    wait_for_leaders(pair, "configs-t");
    for (version, synonyms) in [(1, false), (1, true), (4, false)] {
        for (topic, keys) in
            [("configs-t", None), ("configs-t", Some(vec!["retention.ms"])), ("nope", None)]
        {
            let mut resource = DescribeConfigsResource::default();
            resource.resource_type = 2;
            resource.resource_name = text(topic);
            resource.configuration_keys = keys.map(|keys| keys.into_iter().map(text).collect());
            let mut request = DescribeConfigsRequest::default();
            request.resources.push(resource);
            request.include_synonyms = synonyms;
            let case = format!(
                "DescribeConfigs {topic} keys={:?} synonyms={synonyms}",
                request.resources[0].configuration_keys
            );
            pair.compare(&case, version, &request, normalize_describe_configs);
        }
    }
}

/// Commits of a group with no members (generation -1, as admin tools and simple consumers do).
fn offset_commit(pair: &mut Pair) {
    let group = "differential-group";
    wait_for_coordinator(pair, group);
    let commit = |topic: &str, partitions: &[i32]| {
        let mut request = OffsetCommitRequest::default();
        request.group_id = GroupId(text(group));
        request.generation_id_or_member_epoch = -1;
        let mut entry = OffsetCommitRequestTopic::default();
        entry.name = name(topic);
        for partition in partitions {
            let mut committed = OffsetCommitRequestPartition::default();
            committed.partition_index = *partition;
            committed.committed_offset = 5;
            committed.committed_metadata = Some(text("meta"));
            entry.partitions.push(committed);
        }
        request.topics.push(entry);
        request
    };
    // Kafka's coordinator answers NOT_COORDINATOR / COORDINATOR_LOAD_IN_PROGRESS until the
    // group's offsets partition is loaded, even after FindCoordinator named it.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let response = pair.kafka.call(8, &commit("fetch-t", &[0]));
        let code = response.topics[0].partitions[0].error_code;
        if code != 14 && code != 16 {
            break;
        }
        assert!(Instant::now() < deadline, "Kafka's coordinator never loaded: {code}");
        sleep(Duration::from_millis(200));
    }
    pair.compare(
        "OffsetCommit known partition",
        8,
        &commit("fetch-t", &[0]),
        normalize_offset_commit,
    );
    pair.compare(
        "OffsetCommit unknown topic",
        8,
        &commit("no-such-topic", &[0]),
        normalize_offset_commit,
    );
    pair.compare(
        "OffsetCommit known topic, unknown partition",
        8,
        &commit("fetch-t", &[0, 9]),
        normalize_offset_commit,
    );
}

/// Strings past 32,767 bytes: Kafka's generated readers refuse them, compact ones too
/// ("string field groupId had invalid length"), and close the connection; so must Tern (it
/// once aborted on the first one). At 32,767 bytes both answer, with the same codes.
fn string_length_limit(pair: &mut Pair) {
    let commit = |group: &str| {
        OffsetCommitRequest::default()
            .with_group_id(GroupId(text(group)))
            .with_generation_id_or_member_epoch(-1)
            .with_topics(vec![OffsetCommitRequestTopic::default()
                .with_name(name("fetch-t"))
                .with_partitions(vec![OffsetCommitRequestPartition::default()
                    .with_partition_index(0)
                    .with_committed_offset(5)])])
    };
    let find = |key: &str| FindCoordinatorRequest::default().with_coordinator_keys(vec![text(key)]);
    let metadata = |topic: &str| metadata_request(Some(&[topic]), false);
    let refused = [
        pair.compare_on_new_connections(
            "OffsetCommit 40,000-byte compact group id",
            8,
            &commit(&"g".repeat(40_000)),
            normalize_offset_commit,
        ),
        pair.compare_on_new_connections(
            "Metadata 32,768-byte compact topic name",
            12,
            &metadata(&"t".repeat(32_768)),
            normalize_metadata,
        ),
        pair.compare_on_new_connections(
            "FindCoordinator 32,768-byte compact key",
            4,
            &find(&"k".repeat(32_768)),
            normalize_find_coordinator,
        ),
    ];
    assert_eq!(refused, [(true, true); 3], "both brokers close the connection");
    let longest = "g".repeat(32_767);
    wait_for_group_load(pair, &longest);
    let accepted = [
        pair.compare_on_new_connections(
            "OffsetCommit 32,767-byte group id",
            8,
            &commit(&longest),
            normalize_offset_commit,
        ),
        pair.compare_on_new_connections(
            "Metadata 32,767-byte topic name",
            12,
            &metadata(&"t".repeat(32_767)),
            normalize_metadata,
        ),
        pair.compare_on_new_connections(
            "FindCoordinator 32,767-byte key",
            4,
            &find(&"k".repeat(32_767)),
            normalize_find_coordinator,
        ),
    ];
    assert_eq!(accepted, [(false, false); 3], "both brokers answer");
}

// ---- AlterConfigs, IncrementalAlterConfigs, DeleteRecords ------------------------------------

const SET: i8 = 0;
const DELETE: i8 = 1;
const APPEND: i8 = 2;
const TOPIC: i8 = 2;
const BROKER: i8 = 4;
const BROKER_LOGGER: i8 = 8;

/// (name, operation, value) of IncrementalAlterConfigs; (name, value) of AlterConfigs.
type IncrementalConfig<'a> = (&'a str, i8, Option<&'a str>);
type LegacyConfig<'a> = (&'a str, Option<&'a str>);

fn incremental_request(
    resource_type: i8,
    resource: &str,
    configs: &[IncrementalConfig],
    validate_only: bool,
) -> IncrementalAlterConfigsRequest {
    let configs = configs
        .iter()
        .map(|(key, operation, value)| {
            incremental_alter_configs_request::AlterableConfig::default()
                .with_name(text(key))
                .with_config_operation(*operation)
                .with_value(value.map(text))
        })
        .collect();
    let resource = incremental_alter_configs_request::AlterConfigsResource::default()
        .with_resource_type(resource_type)
        .with_resource_name(text(resource))
        .with_configs(configs);
    IncrementalAlterConfigsRequest::default()
        .with_resources(vec![resource])
        .with_validate_only(validate_only)
}

fn alter_request(
    resource: &str,
    configs: &[LegacyConfig],
    validate_only: bool,
) -> AlterConfigsRequest {
    let configs = configs
        .iter()
        .map(|(key, value)| {
            alter_configs_request::AlterableConfig::default()
                .with_name(text(key))
                .with_value(value.map(text))
        })
        .collect();
    let resource = alter_configs_request::AlterConfigsResource::default()
        .with_resource_type(TOPIC)
        .with_resource_name(text(resource))
        .with_configs(configs);
    AlterConfigsRequest::default().with_resources(vec![resource]).with_validate_only(validate_only)
}

fn normalize_incremental(response: &mut IncrementalAlterConfigsResponse) {
    response.throttle_time_ms = 0;
    for result in &mut response.responses {
        result.error_message = result.error_message.as_ref().map(|_| text("message"));
    }
}

fn normalize_alter(response: &mut AlterConfigsResponse) {
    response.throttle_time_ms = 0;
    for result in &mut response.responses {
        result.error_message = result.error_message.as_ref().map(|_| text("message"));
    }
}

/// Every config of `topic` on both brokers, compared (an empty key list means all, as null).
/// Kafka's broker learns a config change from the metadata log a moment after the controller
/// answered the alteration, so Kafka is asked again (up to 10 s) until it agrees; Tern
/// applies the change before it answers.
fn compare_topic_configs(pair: &mut Pair, case: &str, topic: &str) {
    for (keys, synonyms) in [(None, false), (Some(Vec::new()), false), (None, true)] {
        let mut resource = DescribeConfigsResource::default();
        resource.resource_type = TOPIC;
        resource.resource_name = text(topic);
        resource.configuration_keys = keys;
        let request = DescribeConfigsRequest::default()
            .with_resources(vec![resource])
            .with_include_synonyms(synonyms);
        let mut tern = pair.tern.call(4, &request);
        normalize_describe_configs(&mut tern);
        let deadline = Instant::now() + Duration::from_secs(10);
        let kafka = loop {
            let mut kafka = pair.kafka.call(4, &request);
            normalize_describe_configs(&mut kafka);
            if kafka == tern || Instant::now() > deadline {
                break kafka;
            }
            sleep(Duration::from_millis(100));
        };
        pair.check_equal(&format!("{case} (v4)"), &tern, &kafka);
    }
}

fn incremental_alter_configs(pair: &mut Pair) {
    pair.compare("CreateTopics alter-t", 7, &create_request("alter-t", 1, &[]), normalize_create);
    wait_for_leaders(pair, "alter-t");
    let cases: &[(&str, &str, &[IncrementalConfig], bool)] = &[
        ("valid", "alter-t", &[("retention.ms", SET, Some("3600000"))], false),
        ("append to a list", "alter-t", &[("cleanup.policy", APPEND, Some("compact"))], false),
        ("validate_only", "alter-t", &[("retention.bytes", SET, Some("1000"))], true),
        ("bad value", "alter-t", &[("retention.ms", SET, Some("soon"))], false),
        ("below the minimum", "alter-t", &[("retention.ms", SET, Some("-2"))], false),
        ("unknown name", "alter-t", &[("no.such.config", SET, Some("1"))], false),
        ("append to a number", "alter-t", &[("retention.ms", APPEND, Some("5"))], false),
        ("removed in Kafka 4", "alter-t", &[("message.format.version", SET, Some("3.0"))], false),
        ("unknown topic", "alter-nope", &[("retention.ms", SET, Some("1000"))], false),
        ("unknown topic, bad value", "alter-nope", &[("retention.ms", SET, Some("x"))], false),
        ("unknown topic, unknown name", "alter-nope", &[("no.such", SET, Some("1"))], false),
        ("invalid topic name", "bad name!", &[("retention.ms", SET, Some("1000"))], false),
        ("delete an unset config", "alter-t", &[("segment.ms", DELETE, None)], false),
    ];
    for version in [0, 1] {
        for (case, topic, configs, validate_only) in cases {
            let request = incremental_request(TOPIC, topic, configs, *validate_only);
            let case = format!("IncrementalAlterConfigs {case}");
            pair.compare(&case, version, &request, normalize_incremental);
        }
    }
    compare_topic_configs(pair, "DescribeConfigs after IncrementalAlterConfigs", "alter-t");
    let deleted = incremental_request(TOPIC, "alter-t", &[("retention.ms", DELETE, None)], false);
    pair.compare("IncrementalAlterConfigs delete", 1, &deleted, normalize_incremental);
    compare_topic_configs(pair, "DescribeConfigs after a DELETE", "alter-t");
}

/// Dynamic broker configs and log levels: Kafka accepts them, Tern refuses them
/// (INVALID_REQUEST, an accepted difference: docs/compatibility.md). Asserted on each side.
fn broker_resources(pair: &mut Pair) {
    let node_of = |connection: &mut common::kafka::Connection| {
        let metadata: MetadataResponse = connection.call(9, &metadata_request(Some(&[]), false));
        metadata.brokers[0].node_id.0.to_string()
    };
    let (tern_node, kafka_node) = (node_of(&mut pair.tern), node_of(&mut pair.kafka));
    let cases = [
        (BROKER, ("log.retention.ms", Some("100000000"))),
        (BROKER_LOGGER, ("kafka.server.KafkaApis", Some("INFO"))),
    ];
    for (resource_type, (key, value)) in cases {
        let configs = [(key, SET, value)];
        let tern =
            pair.tern.call(1, &incremental_request(resource_type, &tern_node, &configs, true));
        let kafka =
            pair.kafka.call(1, &incremental_request(resource_type, &kafka_node, &configs, true));
        let codes = (tern.responses[0].error_code, kafka.responses[0].error_code);
        println!("resource type {resource_type}: Tern {codes:?} Kafka: {kafka:?}");
        pair.check_equal(&format!("resource type {resource_type} codes"), &codes, &(42, 0));
    }
}

fn alter_configs(pair: &mut Pair) {
    let cases: &[(&str, &str, &[LegacyConfig], bool)] = &[
        (
            "valid, replacing every config",
            "alter-t",
            &[("retention.ms", Some("7200000")), ("segment.ms", Some("3600000"))],
            false,
        ),
        ("validate_only", "alter-t", &[("retention.bytes", Some("1000"))], true),
        ("bad value", "alter-t", &[("segment.ms", Some("0"))], false),
        ("unknown name", "alter-t", &[("no.such.config", Some("1"))], false),
        ("removed in Kafka 4", "alter-t", &[("message.format.version", Some("0.10.0.0"))], false),
        ("unknown topic", "alter-nope", &[("retention.ms", Some("1000"))], false),
        // librdkafka's 0081 expects the topic checked first (UNKNOWN_TOPIC_OR_PARTITION).
        (
            "unknown topic, unknown name",
            "alter-nope",
            &[("offset.metadata.max.bytes", Some("1"))],
            false,
        ),
        ("unknown topic, bad value", "alter-nope", &[("retention.ms", Some("x"))], false),
    ];
    for version in [0, 1, 2] {
        for (case, topic, configs, validate_only) in cases {
            let request = alter_request(topic, configs, *validate_only);
            pair.compare(&format!("AlterConfigs {case}"), version, &request, normalize_alter);
        }
    }
    compare_topic_configs(pair, "DescribeConfigs after AlterConfigs", "alter-t");
}

fn delete_records_request(topic: &str, partitions: &[(i32, i64)]) -> DeleteRecordsRequest {
    let partitions = partitions
        .iter()
        .map(|(index, offset)| {
            delete_records_request::DeleteRecordsPartition::default()
                .with_partition_index(*index)
                .with_offset(*offset)
        })
        .collect();
    let topic = delete_records_request::DeleteRecordsTopic::default()
        .with_name(name(topic))
        .with_partitions(partitions);
    DeleteRecordsRequest::default().with_topics(vec![topic]).with_timeout_ms(30_000)
}

/// Kafka may answer NOT_LEADER_OR_FOLLOWER for a moment after Metadata already named the
/// leader of a new topic (measured on 4.4.0); nothing is appended then, so Kafka is asked again
/// until it takes the batch, and only that answer is compared with Tern's.
fn produce_when_kafka_is_ready(pair: &mut Pair, case: &str, request: &ProduceRequest) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut kafka = loop {
        let response = pair.kafka.call(9, request);
        let code = response.responses[0].partition_responses[0].error_code;
        if code != 6 || Instant::now() > deadline {
            break response;
        }
        sleep(Duration::from_millis(100));
    };
    let mut tern = pair.tern.call(9, request);
    normalize_produce(&mut tern);
    normalize_produce(&mut kafka);
    pair.check_equal(&format!("{case} (v9)"), &tern, &kafka);
}

fn normalize_delete_records(response: &mut DeleteRecordsResponse) {
    response.throttle_time_ms = 0;
}

fn delete_records(pair: &mut Pair) {
    let created = create_request("records-t", 2, &[]);
    pair.compare("CreateTopics records-t", 7, &created, normalize_create);
    wait_for_leaders(pair, "records-t");
    for index in 0..3 {
        let values: Vec<String> = (0..5).map(|record| format!("value-{index}-{record}")).collect();
        let values: Vec<&str> = values.iter().map(String::as_str).collect();
        let request = produce_request("records-t", 0, -1, batch(TIMESTAMP_MS + index, &values));
        produce_when_kafka_is_ready(pair, "Produce to records-t", &request);
    }
    let cases: &[(&str, &[(i32, i64)])] = &[
        ("inside a batch", &[(0, 7)]),
        ("below the start", &[(0, 3)]),
        ("above the high watermark", &[(0, 16)]),
        ("-2", &[(0, -2)]),
        ("unknown partition", &[(9, 1)]),
        ("-1 on an empty partition", &[(1, -1)]),
    ];
    for (case, partitions) in cases {
        let request = delete_records_request("records-t", partitions);
        pair.compare(&format!("DeleteRecords {case}"), 0, &request, normalize_delete_records);
    }
    let unknown = delete_records_request("records-nope", &[(0, 1)]);
    pair.compare("DeleteRecords unknown topic", 2, &unknown, normalize_delete_records);
    let earliest = list_offsets_request("records-t", -2);
    pair.compare("ListOffsets earliest after DeleteRecords", 7, &earliest, normalize_list_offsets);
    let by_time = list_offsets_request("records-t", 0);
    pair.compare("ListOffsets by timestamp below the start", 7, &by_time, normalize_list_offsets);
    for (case, offset) in [("below the new start", 5), ("at the new start", 7)] {
        let request = fetch_request("records-t", offset, 1 << 20, (0, 1));
        pair.compare(&format!("Fetch {case}"), 12, &request, normalize_fetch);
    }
    let to_end = delete_records_request("records-t", &[(0, -1)]);
    pair.compare("DeleteRecords -1 (the high watermark)", 2, &to_end, normalize_delete_records);
    pair.compare("ListOffsets earliest at the end", 7, &earliest, normalize_list_offsets);
    let at_end = delete_records_request("records-t", &[(0, 15)]);
    pair.compare("DeleteRecords at the high watermark", 1, &at_end, normalize_delete_records);
    // Exists on both since offset_commit: the groups' state lives there.
    let internal = delete_records_request("__consumer_offsets", &[(0, -1)]);
    pair.compare("DeleteRecords on __consumer_offsets", 2, &internal, normalize_delete_records);
}

/// Produce answers to converting topics: a LogAppendTime topic reports each broker's clock.
fn normalize_converted_produce(response: &mut ProduceResponse) {
    normalize_produce(response);
    for topic in &mut response.responses {
        for partition in &mut topic.partition_responses {
            if partition.log_append_time_ms > TIMESTAMP_MS {
                partition.log_append_time_ms = i64::from(MASKED);
            }
        }
    }
}

/// Fetched batches of converting topics differ in their bytes by design (each broker's
/// compressor, each broker's clock), so they are compared decoded: codec, and for every
/// record its offset, producer fields, timestamp type, key, value and headers — and its
/// timestamp unless the broker assigned it (LogAppendTime).
fn normalize_converted_fetch(response: &mut FetchResponse) {
    normalize_fetch(response);
    for topic in &mut response.responses {
        for partition in &mut topic.partitions {
            let Some(mut records) = partition.records.take() else { continue };
            let Ok(mut batches) = RecordBatchDecoder::decode_all(&mut records) else {
                partition.records = Some(Bytes::from_static(b"undecodable batches"));
                continue;
            };
            for record in batches.iter_mut().flat_map(|batch| batch.records.iter_mut()) {
                if record.timestamp_type == TimestampType::LogAppend {
                    record.timestamp = i64::from(MASKED);
                }
            }
            partition.records = Some(Bytes::from(format!("{batches:?}")));
        }
    }
}

fn normalize_converted_list_offsets(response: &mut ListOffsetsResponse) {
    normalize_list_offsets(response);
    for partition in response.topics.iter_mut().flat_map(|topic| topic.partitions.iter_mut()) {
        if partition.timestamp > TIMESTAMP_MS + 1_000_000 {
            partition.timestamp = i64::from(MASKED);
        }
    }
}

/// Topics with `compression.type` or LogAppendTime: the broker converts produced batches.
fn converted_batches(pair: &mut Pair) {
    let topics: [(&str, &[(&str, &str)]); 3] = [
        ("convert-zstd", &[("compression.type", "zstd")]),
        ("convert-uncompressed", &[("compression.type", "uncompressed")]),
        (
            "convert-appendtime",
            &[("message.timestamp.type", "LogAppendTime"), ("compression.type", "gzip")],
        ),
    ];
    for (topic, configs) in topics {
        let create = create_request(topic, 1, configs);
        pair.compare(&format!("CreateTopics {topic}"), 7, &create, normalize_create);
        wait_for_leaders(pair, topic);
        let codecs = [Compression::None, Compression::Lz4, Compression::Snappy, Compression::Gzip];
        for (index, codec) in codecs.into_iter().enumerate() {
            let values: Vec<String> = (0..20).map(|record| format!("{codec:?}-{record}")).collect();
            let values: Vec<&str> = values.iter().map(String::as_str).collect();
            let first_timestamp_ms = TIMESTAMP_MS + index as i64 * 100;
            let batch = compressed_batch(first_timestamp_ms, &values, codec);
            let request = produce_request(topic, 0, -1, batch);
            let case = format!("Produce {codec:?} to {topic}");
            pair.compare(&case, 9, &request, normalize_converted_produce);
        }
        for version in [4, 9, 12] {
            let request = fetch_request(topic, 0, 1 << 20, (0, 1));
            let case = format!("Fetch {topic}");
            pair.compare(&case, version, &request, normalize_converted_fetch);
        }
        for timestamp in [-3, TIMESTAMP_MS + 150] {
            let request = list_offsets_request(topic, timestamp);
            let case = format!("ListOffsets {timestamp} on {topic}");
            pair.compare(&case, 8, &request, normalize_converted_list_offsets);
        }
    }
}

/// One Kafka, one Tern, every case in sequence (Kafka takes seconds to start).
#[test]
fn tern_answers_like_apache_kafka() {
    let directory = test_dir("differential");
    let kafka = KafkaPeer::start(&directory.join("kafka"));
    let mut tern = TernServer::start(&directory.join("tern"), &["--shards", "2"]);
    let mut pair = Pair::connect(&tern.bootstrap(), &kafka.bootstrap());
    api_versions(&mut pair);
    metadata(&mut pair);
    create_topics(&mut pair);
    topic_config_bounds(&mut pair);
    create_partitions(&mut pair);
    delete_topics(&mut pair);
    produce(&mut pair);
    idempotent_produce(&mut pair);
    fetch(&mut pair);
    list_offsets(&mut pair);
    max_timestamp_out_of_order(&mut pair);
    describe_configs(&mut pair);
    offset_commit(&mut pair);
    string_length_limit(&mut pair);
    incremental_alter_configs(&mut pair);
    broker_resources(&mut pair);
    alter_configs(&mut pair);
    delete_records(&mut pair);
    converted_batches(&mut pair);
    tern.stop();
    drop(kafka);
    pair.assert_agreed();
}
