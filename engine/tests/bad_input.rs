//! Bad input against the real binary: every case gets a Kafka error code or a closed
//! connection, the broker stays up, and nothing bad is stored.

mod common;

use bytes::Bytes;
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use tern::record_batch::build::{encode_batch, ProducerStamp, Record};

use common::kafka::{create_topic, topic_name, Connection};
use common::{test_dir, TernServer};

const CORRUPT_MESSAGE: i16 = 2;
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const UNSUPPORTED_VERSION: i16 = 35;

fn produce(
    connection: &mut Connection,
    topic: &str,
    records: Bytes,
) -> PartitionProduceResponseView {
    let request =
        ProduceRequest::default().with_acks(-1).with_timeout_ms(10_000).with_topic_data(vec![
            TopicProduceData::default().with_name(topic_name(topic)).with_partition_data(vec![
                PartitionProduceData::default().with_index(0).with_records(Some(records)),
            ]),
        ]);
    let response = connection.call(9, &request);
    let partition = &response.responses[0].partition_responses[0];
    PartitionProduceResponseView {
        error_code: partition.error_code,
        base_offset: partition.base_offset,
    }
}

#[derive(Debug)]
struct PartitionProduceResponseView {
    error_code: i16,
    base_offset: i64,
}

fn fetch_high_watermark(connection: &mut Connection, topic: &str) -> (i16, i64, usize) {
    let request = FetchRequest::default()
        .with_max_wait_ms(0)
        .with_max_bytes(1 << 20)
        .with_session_epoch(-1)
        .with_topics(vec![FetchTopic::default().with_topic(topic_name(topic)).with_partitions(
            vec![FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(0)
                .with_partition_max_bytes(1 << 20)],
        )]);
    let response = connection.call(11, &request);
    let partition = &response.responses[0].partitions[0];
    let size = partition.records.as_ref().map_or(0, |records| records.len());
    (partition.error_code, partition.high_watermark, size)
}

fn one_batch() -> Vec<u8> {
    let record =
        Record { key: Some(b"k".to_vec()), value: Some(b"v".to_vec()), ..Record::default() };
    encode_batch(&[record], 1_700_000_000_000, ProducerStamp::NONE)
}

fn broker_still_answers(server: &TernServer) {
    let mut connection = Connection::connect(&server.bootstrap());
    let response = connection.call(
        3,
        &ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("tests"))
            .with_client_software_version(StrBytes::from_static_str("1")),
    );
    assert_eq!(response.error_code, 0);
}

#[test]
fn malformed_frames_close_the_connection_and_the_broker_stays_up() {
    let directory = test_dir("bad-frames");
    let mut server =
        TernServer::start(&directory.join("data"), &["--max-request-bytes", "1048576"]);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("garbage", b"\x00\x00\x00\x10this is not kafka".to_vec()),
        ("oversized length prefix", 0x7fff_ffffi32.to_be_bytes().to_vec()),
        ("just over --max-request-bytes", (1_048_577i32).to_be_bytes().to_vec()),
        ("negative length prefix", (-5i32).to_be_bytes().to_vec()),
        (
            "unknown api key",
            [&[0, 0, 0, 10][..], &[0x27, 0x0f, 0, 0, 0, 0, 0, 1, 0xff, 0xff]].concat(),
        ),
        (
            "unsupported produce version",
            [&[0, 0, 0, 10][..], &[0, 0, 0, 1, 0, 0, 0, 1, 0xff, 0xff]].concat(),
        ),
        ("truncated body", [&[0, 0, 0, 9][..], &[0, 18, 0, 3, 0, 0, 0, 1, 0]].concat()),
    ];
    for (what, bytes) in cases {
        let mut connection = Connection::connect(&server.bootstrap());
        connection.send_raw(&bytes);
        assert!(connection.is_closed_by_broker(), "{what}: connection should be closed");
        broker_still_answers(&server);
    }
    // A frame cut short by the client closing is simply dropped.
    let mut connection = Connection::connect(&server.bootstrap());
    connection.send_raw(&[0, 0, 0, 100, 0, 18]);
    drop(connection);
    broker_still_answers(&server);
    assert!(server.is_running());
    server.stop();
}

#[test]
fn unsupported_api_versions_version_gets_error_35_with_our_ranges() {
    let directory = test_dir("api-versions");
    let mut server = TernServer::start(&directory.join("data"), &[]);
    let mut connection = Connection::connect(&server.bootstrap());
    // ApiVersions v99: header v1 layout (key, version, correlation id, client id).
    connection.send_raw(&[0, 0, 0, 10, 0, 18, 0, 99, 0, 0, 0, 7, 0xff, 0xff]);
    let mut body = connection.read_frame().expect("a v0 answer");
    use bytes::Buf;
    assert_eq!(body.get_i32(), 7, "correlation id");
    let response =
        <ApiVersionsResponse as kafka_protocol::protocol::Decodable>::decode(&mut body, 0).unwrap();
    assert_eq!(response.error_code, UNSUPPORTED_VERSION);
    let api_versions =
        response.api_keys.iter().find(|key| key.api_key == 18).expect("ApiVersions listed");
    assert_eq!((api_versions.min_version, api_versions.max_version), (0, 4));
    server.stop();
}

#[test]
fn corrupt_batches_are_rejected_and_nothing_is_stored() {
    let directory = test_dir("corrupt-batch");
    let mut server = TernServer::start(&directory.join("data"), &[]);
    let mut connection = Connection::connect(&server.bootstrap());
    create_topic(&mut connection, "corrupt", 1);
    let mut batch = one_batch();
    let last = batch.len() - 1;
    batch[last] ^= 0x01;
    let answer = produce(&mut connection, "corrupt", Bytes::from(batch));
    assert_eq!(answer.error_code, CORRUPT_MESSAGE, "{answer:?}");
    let mut magic_one = one_batch();
    magic_one[16] = 1;
    let answer = produce(&mut connection, "corrupt", Bytes::from(magic_one));
    assert_ne!(answer.error_code, 0, "{answer:?}");
    assert_eq!(fetch_high_watermark(&mut connection, "corrupt"), (0, 0, 0), "nothing stored");
    let answer = produce(&mut connection, "corrupt", Bytes::from(one_batch()));
    assert_eq!((answer.error_code, answer.base_offset), (0, 0), "good batches still land at 0");
    server.stop();
}

#[test]
fn produce_to_unknown_or_deleted_topic_is_refused_and_creates_nothing() {
    let directory = test_dir("unknown-topic");
    let mut server = TernServer::start(&directory.join("data"), &[]);
    let mut connection = Connection::connect(&server.bootstrap());
    let answer = produce(&mut connection, "never-created", Bytes::from(one_batch()));
    assert_eq!(answer.error_code, UNKNOWN_TOPIC_OR_PARTITION);
    let metadata = connection.call(
        12,
        &MetadataRequest::default().with_allow_auto_topic_creation(false).with_topics(Some(vec![
            MetadataRequestTopic::default().with_name(Some(topic_name("never-created"))),
        ])),
    );
    assert_eq!(
        metadata.topics[0].error_code, UNKNOWN_TOPIC_OR_PARTITION,
        "produce created nothing"
    );

    create_topic(&mut connection, "doomed", 1);
    assert_eq!(produce(&mut connection, "doomed", Bytes::from(one_batch())).error_code, 0);
    let deleted = connection.call(
        6,
        &DeleteTopicsRequest::default()
            .with_timeout_ms(10_000)
            .with_topics(vec![DeleteTopicState::default().with_name(Some(topic_name("doomed")))]),
    );
    assert_eq!(deleted.responses[0].error_code, 0);
    let answer = produce(&mut connection, "doomed", Bytes::from(one_batch()));
    assert_eq!(answer.error_code, UNKNOWN_TOPIC_OR_PARTITION);
    assert!(!directory.join("data").join("doomed-0").exists(), "partition directory removed");
    server.stop();
}

/// Kafka's generated readers refuse any string longer than 32,767 bytes, compact ones too
/// ("string field groupId had invalid length"), and close the connection. Tern once let a
/// 40,000-byte compact group id through to the `__consumer_offsets` record encoder, whose
/// int16 length assertion aborted the process.
#[test]
fn offset_commit_with_a_40000_byte_group_id_closes_the_connection_only() {
    let directory = test_dir("long-group-id");
    let mut server = TernServer::start(&directory.join("data"), &[]);
    let mut connection = Connection::connect(&server.bootstrap());
    create_topic(&mut connection, "committed", 1);
    let request = OffsetCommitRequest::default()
        .with_group_id(GroupId(StrBytes::from_string("g".repeat(40_000))))
        .with_generation_id_or_member_epoch(-1)
        .with_topics(vec![OffsetCommitRequestTopic::default()
            .with_name(topic_name("committed"))
            .with_partitions(vec![OffsetCommitRequestPartition::default()
                .with_partition_index(0)
                .with_committed_offset(0)])]);
    let frame = connection.encode(8, &request);
    connection.send_raw(&frame);
    assert!(connection.is_closed_by_broker(), "Kafka closes the connection");
    broker_still_answers(&server);
    // The broker still serves the topic the commit named, on a new connection.
    let mut connection = Connection::connect(&server.bootstrap());
    assert_eq!(produce(&mut connection, "committed", Bytes::from(one_batch())).error_code, 0);
    assert!(server.is_running());
    server.stop();
}

/// A second broker started on a port the first listens on refuses to start ("cannot
/// listen", exit 1). The shards' SO_REUSEPORT would otherwise let it join the first's
/// listeners, and the kernel would hand each broker some of the connections: seen in CI as
/// a test's first request answered by another test's broker, which closed it.
#[test]
fn a_second_broker_on_a_taken_port_refuses_to_start() {
    let directory = test_dir("taken-port");
    let mut first = TernServer::start(&directory.join("first"), &["--shards", "2"]);
    let listen = first.bootstrap();
    let stderr_path = directory.join("second.stderr");
    let mut second = std::process::Command::new(env!("CARGO_BIN_EXE_tern"))
        .args(["--listen", &listen, "--shards", "1", "--data-dir"])
        .arg(directory.join("second"))
        .stderr(std::fs::File::create(&stderr_path).expect("create the stderr file"))
        .spawn()
        .expect("start a second tern");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let status = loop {
        if let Some(status) = second.try_wait().expect("poll the second tern") {
            break Some(status);
        }
        if std::time::Instant::now() > deadline {
            let _ = second.kill();
            let _ = second.wait();
            break None;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let stderr = std::fs::read_to_string(&stderr_path).unwrap_or_default();
    let status = status.unwrap_or_else(|| panic!("the second tern is serving:\n{stderr}"));
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("cannot listen on"), "{stderr}");
    let mut connection = Connection::connect(&listen);
    create_topic(&mut connection, "still-served", 1);
    first.stop();
}
