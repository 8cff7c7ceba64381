//! CreatePartitions against the real binary over the raw protocol: a topic grown from 1 to 3
//! partitions takes produce and fetch on the new partition at once, Metadata reports it, the
//! refusals carry Kafka's codes, validate_only changes nothing, and the growth survives a
//! restart.

mod common;

use bytes::Bytes;
use kafka_protocol::messages::create_partitions_request::{
    CreatePartitionsAssignment, CreatePartitionsTopic,
};
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use tern::record_batch::build::{encode_batch, ProducerStamp, Record};

use common::kafka::{batch_producers, Connection};
use common::{test_dir, TernServer};

const TOPIC: &str = "growing";
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const INVALID_PARTITIONS: i16 = 37;
const INVALID_REPLICA_ASSIGNMENT: i16 = 39;
const INVALID_REQUEST: i16 = 42;

fn name(topic: &str) -> TopicName {
    TopicName(StrBytes::from_string(topic.to_string()))
}

/// No assignments: null, not the codec's default empty list (which asks for zero partitions).
fn grow(topic: &str, count: i32) -> CreatePartitionsTopic {
    CreatePartitionsTopic::default().with_name(name(topic)).with_count(count).with_assignments(None)
}

/// (name, error code) of each result, at `version`.
fn create_partitions(
    connection: &mut Connection,
    version: i16,
    topics: Vec<CreatePartitionsTopic>,
    validate_only: bool,
) -> Vec<(String, i16)> {
    let request = CreatePartitionsRequest::default()
        .with_topics(topics)
        .with_timeout_ms(30_000)
        .with_validate_only(validate_only);
    let response = connection.call(version, &request);
    response.results.iter().map(|result| (result.name.to_string(), result.error_code)).collect()
}

fn partition_count(connection: &mut Connection, topic: &str) -> usize {
    let request = MetadataRequest::default().with_topics(Some(vec![
        metadata_request::MetadataRequestTopic::default().with_name(Some(name(topic))),
    ]));
    let response = connection.call(9, &request);
    let entry = &response.topics[0];
    assert_eq!(entry.error_code, 0, "{topic}: {entry:?}");
    entry.partitions.len()
}

/// (error code, base offset) of one record produced to `partition`.
fn produce(connection: &mut Connection, partition: i32, value: &str) -> (i16, i64) {
    let record = Record { value: Some(value.as_bytes().to_vec()), ..Record::default() };
    let records = encode_batch(&[record], 1_700_000_000_000, ProducerStamp::NONE);
    let request =
        ProduceRequest::default().with_acks(-1).with_timeout_ms(10_000).with_topic_data(vec![
            TopicProduceData::default().with_name(name(TOPIC)).with_partition_data(vec![
                PartitionProduceData::default()
                    .with_index(partition)
                    .with_records(Some(Bytes::from(records))),
            ]),
        ]);
    let response = connection.call(9, &request);
    let answer = &response.responses[0].partition_responses[0];
    (answer.error_code, answer.base_offset)
}

fn create_topic(connection: &mut Connection) {
    let request = CreateTopicsRequest::default().with_timeout_ms(30_000).with_topics(vec![
        CreatableTopic::default()
            .with_name(name(TOPIC))
            .with_num_partitions(1)
            .with_replication_factor(1),
    ]);
    let response = connection.call(7, &request);
    assert_eq!(response.topics[0].error_code, 0, "{response:?}");
}

#[test]
fn grown_partitions_serve_at_once_refusals_match_kafka_and_growth_survives_a_restart() {
    let directory = test_dir("create-partitions");
    let mut server = TernServer::start(&directory.join("data"), &["--shards", "2"]);
    let mut connection = Connection::connect(&server.bootstrap());
    create_topic(&mut connection);
    assert_eq!(partition_count(&mut connection, TOPIC), 1);

    // validate_only answers as a real change would, and changes nothing.
    let checked = create_partitions(&mut connection, 0, vec![grow(TOPIC, 3)], true);
    assert_eq!(checked, vec![(TOPIC.to_string(), 0)]);
    assert_eq!(partition_count(&mut connection, TOPIC), 1);
    assert_eq!(produce(&mut connection, 2, "too early").0, UNKNOWN_TOPIC_OR_PARTITION);

    let grown = create_partitions(&mut connection, 3, vec![grow(TOPIC, 3)], false);
    assert_eq!(grown, vec![(TOPIC.to_string(), 0)]);
    assert_eq!(partition_count(&mut connection, TOPIC), 3);
    assert_eq!(produce(&mut connection, 2, "on the new partition"), (0, 0));
    assert_eq!(batch_producers(&mut connection, TOPIC, 2), vec![(0, -1)]);
    assert_eq!(produce(&mut connection, 0, "on the old partition"), (0, 0));

    refusals(&mut connection);

    server.stop();
    server.restart();
    let mut connection = Connection::connect(&server.bootstrap());
    assert_eq!(partition_count(&mut connection, TOPIC), 3);
    assert_eq!(batch_producers(&mut connection, TOPIC, 2), vec![(0, -1)]);
    assert_eq!(produce(&mut connection, 2, "after the restart"), (0, 1));
    server.stop();
}

fn refusals(connection: &mut Connection) {
    let shrink = create_partitions(connection, 2, vec![grow(TOPIC, 2)], false);
    assert_eq!(shrink, vec![(TOPIC.to_string(), INVALID_PARTITIONS)]);
    let same = create_partitions(connection, 1, vec![grow(TOPIC, 3)], false);
    assert_eq!(same, vec![(TOPIC.to_string(), INVALID_PARTITIONS)]);
    let unknown = create_partitions(connection, 3, vec![grow("no-such-topic", 2)], false);
    assert_eq!(unknown, vec![("no-such-topic".to_string(), UNKNOWN_TOPIC_OR_PARTITION)]);
    let twice = create_partitions(connection, 3, vec![grow(TOPIC, 4), grow(TOPIC, 5)], false);
    assert_eq!(twice, vec![(TOPIC.to_string(), INVALID_REQUEST)]);
    let elsewhere = CreatePartitionsAssignment::default().with_broker_ids(vec![BrokerId(4242)]);
    let misassigned = grow(TOPIC, 4).with_assignments(Some(vec![elsewhere]));
    let misassigned = create_partitions(connection, 3, vec![misassigned], false);
    assert_eq!(misassigned, vec![(TOPIC.to_string(), INVALID_REPLICA_ASSIGNMENT)]);
    assert_eq!(partition_count(connection, TOPIC), 3, "refusals change nothing");
}
