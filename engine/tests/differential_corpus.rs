//! The request frames real clients recorded (`engine/tests/corpus/kafka-requests/<client>/`),
//! replayed byte for byte to Tern and to Apache Kafka 4.4.0, in the order a client's workload issues
//! them (API versions, metadata, topic creation, producing, reading, groups, deletion); the
//! decoded responses are normalized (`common::differential`) and compared field by field.
//!
//! The frames carry what the recording broker handed the client (producer ids, member ids,
//! fetch sessions, topic ids), so replayed they probe the error paths a reconnecting client
//! meets as much as the happy ones: both brokers must answer them alike.

mod common;

use std::path::{Path, PathBuf};
use std::thread::sleep;
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, CreateTopicsRequest, FindCoordinatorRequest, InitProducerIdRequest,
    MetadataRequest, ProducerId, RequestHeader, RequestKind, ResponseKind,
};
use kafka_protocol::protocol::Decodable;

use common::differential::*;
use common::kafka::Connection;
use common::kafka_peer::KafkaPeer;
use common::{test_dir, TernServer};

/// A recorded frame: its file name, API key, version and bytes (length prefix included).
struct Frame {
    name: String,
    api_key: ApiKey,
    version: i16,
    bytes: Vec<u8>,
    request: RequestKind,
}

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/kafka-requests")
}

/// Where an API comes in a client's workload (unlisted APIs go last but one, deletion last).
fn workflow_rank(api_key: ApiKey) -> usize {
    2 * workflow_position(api_key)
}

fn workflow_position(api_key: ApiKey) -> usize {
    use ApiKey::*;
    let order = [
        ApiVersions,
        Metadata,
        CreateTopics,
        DescribeConfigs,
        DescribeCluster,
        InitProducerId,
        Produce,
        ListOffsets,
        Fetch,
        FindCoordinator,
        JoinGroup,
        SyncGroup,
        Heartbeat,
        OffsetFetch,
        OffsetCommit,
        LeaveGroup,
        ListGroups,
        DescribeGroups,
        DeleteGroups,
    ];
    match api_key {
        DeleteTopics => order.len() + 1,
        _ => order.iter().position(|key| *key == api_key).unwrap_or(order.len()),
    }
}

fn decode_frame(path: &Path) -> Frame {
    let bytes = std::fs::read(path).expect("corpus frame is readable");
    let mut body = Bytes::copy_from_slice(&bytes[4..]);
    let api_key = ApiKey::try_from(i16::from_be_bytes([bytes[4], bytes[5]])).expect("known API");
    let version = i16::from_be_bytes([bytes[6], bytes[7]]);
    RequestHeader::decode(&mut body, api_key.request_header_version(version)).expect("header");
    let request = RequestKind::decode(api_key, &mut body, version).expect("recorded body decodes");
    let name = path.file_name().expect("file name").to_string_lossy().into_owned();
    Frame { name, api_key, version, bytes, request }
}

/// A frame's place in the workflow: metadata naming topics comes after topic creation.
fn frame_rank(frame: &Frame) -> usize {
    match &frame.request {
        RequestKind::Metadata(request)
            if request.topics.as_ref().is_some_and(|t| !t.is_empty()) =>
        {
            workflow_rank(ApiKey::CreateTopics) + 1
        }
        _ => workflow_rank(frame.api_key),
    }
}

/// One client's frames in workflow order (file order within an API: samples are numbered).
fn client_frames(client: &Path) -> Vec<Frame> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(client)
        .expect("client directory")
        .map(|entry| entry.expect("entry").path())
        .filter(|path| path.extension().is_some_and(|extension| extension == "bin"))
        .collect();
    paths.sort();
    let mut frames: Vec<Frame> = paths.iter().map(|path| decode_frame(path)).collect();
    frames.sort_by_key(frame_rank);
    frames
}

/// What a broker did with a frame.
#[derive(Debug)]
#[allow(dead_code)] // The response is compared through its Debug form.
enum Answer {
    Response(Box<ResponseKind>),
    /// A produce with acks=0: no response is the protocol.
    None,
    /// The broker closed the connection (Kafka does so on requests it cannot parse).
    Closed,
}

/// Sends `frame` as recorded and decodes the answer.
fn exchange(connection: &mut Connection, frame: &Frame) -> Answer {
    connection.send_raw(&frame.bytes);
    if let RequestKind::Produce(produce) = &frame.request {
        if produce.acks == 0 {
            return Answer::None;
        }
    }
    let Some(mut body) = connection.read_frame() else { return Answer::Closed };
    let _correlation = body.get_i32();
    if frame.api_key.response_header_version(frame.version) >= 1 {
        let tagged = body.get_u8();
        assert_eq!(tagged, 0, "no tagged fields in the response header");
    }
    let response = ResponseKind::decode(frame.api_key, &mut body, frame.version);
    let mut response =
        response.unwrap_or_else(|error| panic!("{}: response decodes: {error}", frame.name));
    normalize_response(&mut response);
    Answer::Response(Box::new(response))
}

/// Like [`exchange`], but resends while Kafka answers InitProducerId with
/// COORDINATOR_LOAD_IN_PROGRESS: its producer-id manager fetches id blocks asynchronously and
/// refuses meanwhile (clients retry; Tern allocates blocks before it answers).
fn exchange_retrying_kafka(kafka: &mut Connection, frame: &Frame) -> Answer {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let answer = exchange(kafka, frame);
        let loading = matches!(
            &answer,
            Answer::Response(response)
                if matches!(&**response, ResponseKind::InitProducerId(r) if r.error_code == 14)
        );
        if !loading || Instant::now() > deadline {
            return answer;
        }
        sleep(Duration::from_millis(200));
    }
}

/// Before a frame that needs state Kafka builds asynchronously, waits until both have it.
fn prepare(pair: &mut Pair, frame: &Frame) {
    match &frame.request {
        RequestKind::FindCoordinator(request) => coordinators_ready(pair, request),
        RequestKind::JoinGroup(request) => wait_for_group_load(pair, request.group_id.as_str()),
        RequestKind::OffsetFetch(request) => wait_for_group_load(pair, request.group_id.as_str()),
        RequestKind::OffsetCommit(request) => wait_for_group_load(pair, request.group_id.as_str()),
        RequestKind::Metadata(request) if request.allow_auto_topic_creation => {
            auto_created_on_both(pair, request)
        }
        RequestKind::InitProducerId(_) => producer_ids_ready(pair),
        _ => {}
    }
}

/// Kafka answers the first auto-creating Metadata with UNKNOWN_TOPIC_OR_PARTITION while its
/// controller creates the topic; Tern creates it before answering (an accepted difference,
/// docs/compatibility.md, compared in `differential.rs`). So both create it first.
fn auto_created_on_both(pair: &mut Pair, request: &MetadataRequest) {
    let topics = request.topics.iter().flatten().filter_map(|topic| topic.name.as_ref());
    for topic in topics {
        let _ = pair.both(9, &metadata_request(Some(&[topic.as_str()]), true));
        wait_for_leaders(pair, topic.as_str());
    }
}

/// Kafka answers COORDINATOR_LOAD_IN_PROGRESS to InitProducerId until its first producer-id
/// block is allocated (seconds after start); Tern allocates at start.
fn producer_ids_ready(pair: &mut Pair) {
    let request = InitProducerIdRequest::default()
        .with_transaction_timeout_ms(60_000)
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    let deadline = Instant::now() + Duration::from_secs(60);
    while pair.kafka.call(4, &request).error_code == 14 {
        assert!(Instant::now() < deadline, "Kafka never allocated producer ids");
        sleep(Duration::from_millis(200));
    }
}

fn after(pair: &mut Pair, frame: &Frame) {
    if let RequestKind::CreateTopics(request) = &frame.request {
        topics_ready(pair, request);
    }
}

fn topics_ready(pair: &mut Pair, request: &CreateTopicsRequest) {
    if request.validate_only {
        return;
    }
    for topic in &request.topics {
        wait_for_leaders(pair, topic.name.as_str());
    }
}

fn coordinators_ready(pair: &mut Pair, request: &FindCoordinatorRequest) {
    let keys = request.coordinator_keys.iter().chain(std::iter::once(&request.key));
    for key in keys.filter(|key| !key.is_empty()) {
        if request.key_type == 0 {
            wait_for_coordinator(pair, key.as_str());
        }
    }
}

fn replay_client(pair: &mut Pair, client: &Path, tern: &mut TernServer) {
    let client_name = client.file_name().expect("client").to_string_lossy().into_owned();
    // Each client gets fresh connections, as each recorded session had its own.
    pair.tern = Connection::connect(&pair.tern_bootstrap);
    pair.kafka = Connection::connect(&pair.kafka_bootstrap);
    let Some(versions) = pair.tern.try_call(3, &ApiVersionsRequest::default()) else {
        // Seen once in CI (2026-12-07) and not reproduced since: keep what tells why.
        panic!(
            "{client_name}: tern closed a new connection's ApiVersions (running: {}); log:\n{}",
            tern.is_running(),
            tern.log()
        );
    };
    let advertised: Vec<i16> = versions.api_keys.iter().map(|api| api.api_key).collect();
    for frame in client_frames(client) {
        if !advertised.contains(&(frame.api_key as i16)) {
            // Clients send only what the broker advertises; Tern closes the connection on an
            // API it does not implement (Kafka answers its own newer APIs).
            let answer = exchange(&mut pair.tern, &frame);
            assert!(matches!(answer, Answer::Closed), "{}: {answer:?}", frame.name);
            pair.tern = Connection::connect(&pair.tern_bootstrap);
            continue;
        }
        prepare(pair, &frame);
        let tern = exchange(&mut pair.tern, &frame);
        let kafka = exchange_retrying_kafka(&mut pair.kafka, &frame);
        after(pair, &frame);
        let case = format!("{client_name}/{} ({:?} v{})", frame.name, frame.api_key, frame.version);
        pair.check_equal(&case, &tern, &kafka);
        if matches!(tern, Answer::Closed) || matches!(kafka, Answer::Closed) {
            pair.tern = Connection::connect(&pair.tern_bootstrap);
            pair.kafka = Connection::connect(&pair.kafka_bootstrap);
        }
    }
}

#[test]
fn recorded_client_frames_are_answered_like_apache_kafka() {
    let mut clients: Vec<PathBuf> = std::fs::read_dir(corpus_dir())
        .expect("request corpus in engine/tests/corpus")
        .map(|entry| entry.expect("entry").path())
        .filter(|path| path.is_dir())
        .collect();
    clients.sort();
    assert!(clients.len() >= 5, "five recorded clients: {clients:?}");
    let directory = test_dir("differential-corpus");
    let kafka = KafkaPeer::start(&directory.join("kafka"));
    let mut tern = TernServer::start(&directory.join("tern"), &["--shards", "2"]);
    let mut pair = Pair::connect(&tern.bootstrap(), &kafka.bootstrap());
    for client in &clients {
        replay_client(&mut pair, client, &mut tern);
    }
    tern.stop();
    drop(kafka);
    pair.assert_agreed();
}
