//! `broker` target: sequences of requests through the whole broker, in process. Each input
//! gets a fresh one-shard broker on a `SimDisk` (data directory prepared by `Broker::open`,
//! partitions opened and groups rebuilt as `server::run_shard` does), then well-formed
//! requests create real state — the topic [`TOPIC`] with [`PARTITIONS`] partitions holding
//! records, and the group [`GROUP`] with committed offsets — and then the fuzzer's frames
//! follow. Each frame is dispatched as `broker/connection.rs` dispatches one:
//! `decode_request` → `handlers::handle` → `fit_to_version` → `encode_response`, through the
//! real handlers, group coordinator and service, producer ids and partition logs.
//!
//! Input layout: records of `[key, version: u8, body length: u16 BE, body]`. The low 7 bits
//! of `key` are the API key; its high bit pipelines the request (the next one is dispatched
//! before this one has run, as a pipelining client's would be). The request header (API
//! key, version, correlation id = the record's index, client id [`CLIENT_ID`]) is
//! synthesized in the header version the API and version call for, so the fuzzer only has
//! to learn bodies. A short final record takes what is left.
//!
//! Property: nothing panics (a panic aborts the release broker and every partition with it),
//! and after the sequence the broker still answers a Metadata request.
//!
//! Deterministic and fast: the runtime's random numbers are reseeded per input (member ids
//! and topic ids are the same every run, so the fuzzer can learn them), the shard's timers
//! (group sessions and rebalance timeouts, retention, the cleaner) are not started, the
//! initial rebalance delay is 0, and a Fetch waits either 0 ms (max_wait_ms below
//! [`LONG_POLL_MS_MIN`]) or longer than any run lasts, so no outcome depends on how fast
//! the machine is: a request that waits (a join barrier, a long poll) stays pending until
//! another request wakes it or the input ends. The wall clock still stamps records and
//! commits.
//!
//! Shared by the cargo-fuzz target, `engine/tests/fuzz_corpus.rs` and the seed generator in
//! `engine/tests/fuzz_seeds.rs` (both include this file by path).

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::rc::{Rc, Weak};
use std::sync::{mpsc, Arc, Mutex, OnceLock};
use std::task::{Context, Poll, Waker};

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{
    ApiKey, CreateTopicsRequest, GroupId, MetadataRequest, OffsetCommitRequest, ProduceRequest,
    TopicName,
};
use kafka_protocol::protocol::{Encodable, StrBytes};
use tern::broker::handlers::{self, Answer};
use tern::broker::shard::{ClusterIdentity, Shard};
use tern::broker::topics::{self, TopicSnapshot};
use tern::broker::{Broker, BrokerConfig};
use tern::io::{self, block_on, mesh, Disk, JoinHandle, SimDisk};
use tern::protocol::api_versions::unsupported_version_answer;
use tern::protocol::request::{decode_request, Request, RequestError};
use tern::protocol::response::{encode_response, Response};
use tern::protocol::response_fit::fit_to_version;
use tern::record_batch::build::{encode_batch, ProducerStamp, Record};

pub const TOPIC: &str = "fuzz-topic";
pub const PARTITIONS: i32 = 2;
pub const GROUP: &str = "fuzz-group";
pub const CLIENT_ID: &str = "fuzz";
/// Records produced to each partition by the setup; the group commits offset 2 on both.
pub const RECORDS_PER_PARTITION: usize = 3;
pub const COMMITTED_OFFSET: i64 = 2;
/// Fetch max_wait_ms below this becomes 0; at or above it, it is kept (it outlasts any run).
pub const LONG_POLL_MS_MIN: i32 = 60_000;
const RANDOM_SEED: u64 = 0x7E2A_F022;
const DATA_DIR: &str = "/data";
/// Executor turns given to a request (and what it set off) before the next is dispatched:
/// at least the minimum, then until the requests dispatched since the last turns (the
/// pipelined ones and this one) have answered, up to the maximum.
const SETTLE_TURNS_MIN: usize = 8;
const SETTLE_TURNS_MAX: usize = 256;
const RECORD_HEADER_BYTES: usize = 4;
const PIPELINED: u8 = 0x80;

/// One request of an input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub api_key: u8,
    pub api_version: u8,
    pub pipelined: bool,
    pub body: Vec<u8>,
}

impl Frame {
    /// A well-formed request: `body` encoded at `version`.
    pub fn new<T: Encodable>(api_key: ApiKey, version: i16, body: &T) -> Frame {
        let mut bytes = BytesMut::new();
        if let Err(error) = body.encode(&mut bytes, version) {
            panic!("{api_key:?} v{version} does not encode: {error}");
        }
        Frame {
            api_key: u8::try_from(api_key as i16).expect("API keys fit a byte"),
            api_version: u8::try_from(version).expect("versions fit a byte"),
            pipelined: false,
            body: bytes.to_vec(),
        }
    }

    /// The request frame (without its size prefix), with a synthesized header.
    fn request_bytes(&self, correlation_id: i32) -> Bytes {
        let (api_key, api_version) = (i16::from(self.api_key), i16::from(self.api_version));
        let flexible =
            ApiKey::try_from(api_key).is_ok_and(|key| key.request_header_version(api_version) >= 2);
        let mut bytes = BytesMut::with_capacity(16 + self.body.len());
        bytes.put_i16(api_key);
        bytes.put_i16(api_version);
        bytes.put_i32(correlation_id);
        bytes.put_i16(CLIENT_ID.len() as i16);
        bytes.put_slice(CLIENT_ID.as_bytes());
        if flexible {
            bytes.put_u8(0); // no tagged fields
        }
        bytes.put_slice(&self.body);
        bytes.freeze()
    }
}

/// Splits an input into frames (see the module doc for the layout).
pub fn decode(mut data: &[u8]) -> Vec<Frame> {
    let mut frames = Vec::new();
    while data.len() >= RECORD_HEADER_BYTES {
        let length = usize::from(u16::from_be_bytes([data[2], data[3]]));
        let end = (RECORD_HEADER_BYTES + length).min(data.len());
        frames.push(Frame {
            api_key: data[0] & !PIPELINED,
            api_version: data[1],
            pipelined: data[0] & PIPELINED != 0,
            body: data[RECORD_HEADER_BYTES..end].to_vec(),
        });
        data = &data[end..];
    }
    frames
}

/// The inverse of [`decode`] (for seeds and reproducers).
pub fn encode(frames: &[Frame]) -> Vec<u8> {
    let mut bytes = Vec::new();
    for frame in frames {
        let length = u16::try_from(frame.body.len()).expect("bodies fit a u16 length");
        bytes.push(frame.api_key | if frame.pipelined { PIPELINED } else { 0 });
        bytes.push(frame.api_version);
        bytes.extend_from_slice(&length.to_be_bytes());
        bytes.extend_from_slice(&frame.body);
    }
    bytes
}

/// What a run answered: the setup's responses, then one entry per input frame (`None`: not
/// decoded, still pending at the end, or no response, as for acks=0).
pub struct Outcome {
    pub setup: Vec<Response>,
    pub responses: Vec<Option<Response>>,
    /// The run's broker: gone once its tasks are (a broker that outlives its input leaks).
    pub shard: Weak<Shard>,
}

/// One input on a fresh runtime: the replay tests' entry.
pub fn run(data: &[u8]) {
    let frames = decode(data);
    block_on(check(&frames));
}

/// One input on a runtime that lives as long as the fuzzer: the fuzz target's body (a fresh
/// io_uring per input exhausts the kernel's ring memory, see `segment_recovery`). The
/// tasks an input leaves parked are dropped before the next. A panic on the worker thread
/// aborts the process (libfuzzer-sys's panic hook), so libFuzzer records the input.
pub fn run_persistent(data: &[u8]) {
    type Worker = (mpsc::Sender<Vec<u8>>, Mutex<mpsc::Receiver<()>>);
    static WORKER: OnceLock<Worker> = OnceLock::new();
    let (inputs, done) = WORKER.get_or_init(|| {
        let (input_sender, input_receiver) = mpsc::channel::<Vec<u8>>();
        let (done_sender, done_receiver) = mpsc::channel();
        std::thread::spawn(move || {
            block_on(async {
                while let Ok(data) = input_receiver.recv() {
                    let shard = check(&decode(&data)).await.shard;
                    io::drop_spawned_tasks();
                    assert!(shard.upgrade().is_none(), "the input's broker outlived its tasks");
                    if done_sender.send(()).is_err() {
                        return;
                    }
                }
            })
        });
        (input_sender, Mutex::new(done_receiver))
    });
    inputs.send(data.to_vec()).expect("the worker runs until the process ends");
    let done = done.lock().expect("one fuzzing thread");
    done.recv().expect("the worker finishes every input or aborts the process");
}

/// Runs `frames` against a fresh broker and checks that it still answers afterwards.
pub async fn check(frames: &[Frame]) -> Outcome {
    let (shard, setup) = start().await;
    let mut exchanges: Vec<Option<Exchange>> = Vec::with_capacity(frames.len());
    // Requests dispatched since the executor last ran: the pipelined ones and the next.
    let mut batch_start = 0;
    for (index, frame) in frames.iter().enumerate() {
        let correlation_id = i32::try_from(index).unwrap_or(i32::MAX);
        exchanges.push(dispatch(&shard, frame.request_bytes(correlation_id)));
        let batch = &exchanges[batch_start..];
        if !frame.pipelined && batch.iter().any(Option::is_some) {
            settle(batch, SETTLE_TURNS_MAX).await;
            batch_start = exchanges.len();
        }
    }
    settle(&exchanges[batch_start..], SETTLE_TURNS_MAX).await;
    let probe = Frame::new(ApiKey::Metadata, 12, &metadata_request());
    let probe = [dispatch(&shard, probe.request_bytes(-1))];
    settle(&probe, 4 * SETTLE_TURNS_MAX).await;
    let answered = probe[0].as_ref().is_some_and(|exchange| exchange.handle.is_finished());
    assert!(answered, "the broker stopped answering Metadata after the sequence");
    let responses = exchanges.into_iter().map(|exchange| exchange.and_then(take)).collect();
    Outcome { setup, responses, shard: Rc::downgrade(&shard) }
}

/// A dispatched request: its task yields the response as sent (after `fit_to_version`).
struct Exchange {
    handle: JoinHandle<Option<Response>>,
}

/// The response of an exchange that has answered.
fn take(exchange: Exchange) -> Option<Response> {
    if !exchange.handle.is_finished() {
        return None;
    }
    let mut handle = std::pin::pin!(exchange.handle);
    let mut context = Context::from_waker(Waker::noop());
    match handle.as_mut().poll(&mut context) {
        Poll::Ready(response) => response,
        Poll::Pending => None,
    }
}

/// Starts the handler of one request as `connection::dispatch` does; `None` when the
/// connection would have been closed (the request is not understood).
fn dispatch(shard: &Rc<Shard>, request: Bytes) -> Option<Exchange> {
    let peer: SocketAddr = "127.0.0.1:40000".parse().expect("an address");
    match decode_request(request) {
        Ok(mut request) => {
            cap_long_poll(&mut request.body);
            let meta = request.header.clone();
            let handler = handlers::handle(shard.clone(), request, peer);
            let handle = io::spawn_local(async move {
                let mut response = match handler.await? {
                    Answer::Response(response) => response,
                    // Its regions read whole, through the same checks as a send.
                    Answer::Fetch(answer) => Response::Fetch(answer.read_whole().await.ok()?),
                };
                fit_to_version(&mut response, meta.api_version);
                // A response that cannot be encoded closes the connection (logged there);
                // not a crash.
                let _ = encode_response(&meta, &response);
                Some(response)
            });
            Some(Exchange { handle })
        }
        Err(RequestError::UnsupportedVersion { api_key: ApiKey::ApiVersions, .. }) => {
            assert!(unsupported_version_answer(0).is_ok(), "the fallback always encodes");
            None
        }
        Err(_) => None,
    }
}

fn cap_long_poll(request: &mut Request) {
    if let Request::Fetch(fetch) = request {
        if fetch.max_wait_ms < LONG_POLL_MS_MIN {
            fetch.max_wait_ms = 0;
        }
    }
}

/// Lets the executor run: at least [`SETTLE_TURNS_MIN`] turns, then until every exchange
/// of the batch has answered or `turns_max` turns have passed (a request that waits for
/// another, as at a join barrier, uses them all). Deterministic: nothing here completes
/// on its own in real time (the simulated disk completes at once, no timer is due).
async fn settle(exchanges: &[Option<Exchange>], turns_max: usize) {
    for turn in 0..turns_max {
        let answered = exchanges.iter().flatten().all(|exchange| exchange.handle.is_finished());
        if turn >= SETTLE_TURNS_MIN && answered {
            return;
        }
        io::yield_now().await;
    }
}

/// A one-shard broker on a fresh simulated disk, with the topic and the group in place.
async fn start() -> (Rc<Shard>, Vec<Response>) {
    io::seed_random(RANDOM_SEED);
    let disk = Disk::Simulated(SimDisk::new(RANDOM_SEED));
    let listen: SocketAddr = "127.0.0.1:9092".parse().expect("an address");
    let mut config = BrokerConfig::single_node(listen, PathBuf::from(DATA_DIR));
    // No timer runs here to end the delay: the first generation forms at once.
    config.groups.initial_rebalance_delay_ms = 0;
    // Every fetch answer is planned and read chunk by chunk (`fetch_regions.rs`), so the
    // fuzzer drives that path too, not only the small answers read when planned.
    config.fetch_inline_read_max_bytes = 0;
    let broker = Broker::open(config.clone(), disk.clone()).await.expect("a fresh data dir");
    let cluster = ClusterIdentity {
        cluster_id: broker.cluster_id().to_string(),
        node_id: 0,
        directory_id: Default::default(),
    };
    drop(broker);
    let snapshot = topics::load_registry(&disk, &config.data_dir).await.expect("the registry");
    let (sender, _receiver) = mesh::channel(16);
    let empty = Arc::new(TopicSnapshot::default());
    let connections = Default::default();
    let shard = Shard::new(0, Arc::new(config), cluster, disk, vec![sender], empty, connections);
    shard.apply_topics(snapshot).await;
    shard.groups.load(&shard).await;
    let mut setup = Vec::new();
    for frame in setup_frames() {
        let exchange = [dispatch(&shard, frame.request_bytes(0))];
        settle(&exchange, SETTLE_TURNS_MAX).await;
        let [exchange] = exchange;
        let response = exchange.and_then(take).expect("the setup is answered");
        assert_setup_succeeded(&response);
        setup.push(response);
    }
    (shard, setup)
}

fn assert_setup_succeeded(response: &Response) {
    let codes: Vec<i16> = match response {
        Response::CreateTopics(body) => body.topics.iter().map(|topic| topic.error_code).collect(),
        Response::Produce(body) => body
            .responses
            .iter()
            .flat_map(|topic| topic.partition_responses.iter().map(|p| p.error_code))
            .collect(),
        Response::OffsetCommit(body) => body
            .topics
            .iter()
            .flat_map(|topic| topic.partitions.iter().map(|p| p.error_code))
            .collect(),
        other => panic!("unexpected setup response {other:?}"),
    };
    assert!(codes.iter().all(|code| *code == 0), "setup failed: {response:?}");
}

/// CreateTopics, a Produce to every partition, an OffsetCommit of the group.
fn setup_frames() -> Vec<Frame> {
    use kafka_protocol::messages::create_topics_request::CreatableTopic;
    use kafka_protocol::messages::offset_commit_request::{
        OffsetCommitRequestPartition, OffsetCommitRequestTopic,
    };
    let create = CreateTopicsRequest::default().with_timeout_ms(30_000).with_topics(vec![
        CreatableTopic::default()
            .with_name(topic_name())
            .with_num_partitions(PARTITIONS)
            .with_replication_factor(1),
    ]);
    let partitions = (0..PARTITIONS)
        .map(|partition| {
            OffsetCommitRequestPartition::default()
                .with_partition_index(partition)
                .with_committed_offset(COMMITTED_OFFSET)
                .with_committed_leader_epoch(-1)
        })
        .collect();
    let commit = OffsetCommitRequest::default()
        .with_group_id(group_id())
        .with_generation_id_or_member_epoch(-1)
        .with_topics(vec![OffsetCommitRequestTopic::default()
            .with_name(topic_name())
            .with_partitions(partitions)]);
    vec![
        Frame::new(ApiKey::CreateTopics, 7, &create),
        Frame::new(ApiKey::Produce, 9, &produce_request(RECORDS_PER_PARTITION)),
        Frame::new(ApiKey::OffsetCommit, 9, &commit),
    ]
}

pub fn topic_name() -> TopicName {
    TopicName(StrBytes::from_static_str(TOPIC))
}

pub fn group_id() -> GroupId {
    GroupId(StrBytes::from_static_str(GROUP))
}

/// acks=all, one batch of `records` records to every partition of the topic.
pub fn produce_request(records: usize) -> ProduceRequest {
    use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
    let records: Vec<Record> = (0..records)
        .map(|index| Record {
            key: Some(format!("key-{index}").into_bytes()),
            value: Some(format!("value-{index}").into_bytes()),
            timestamp_delta: index as i64,
            ..Default::default()
        })
        .collect();
    let batch = Bytes::from(encode_batch(&records, 1_700_000_000_000, ProducerStamp::NONE));
    let partitions = (0..PARTITIONS)
        .map(|index| {
            PartitionProduceData::default().with_index(index).with_records(Some(batch.clone()))
        })
        .collect();
    ProduceRequest::default().with_acks(-1).with_timeout_ms(30_000).with_topic_data(vec![
        TopicProduceData::default().with_name(topic_name()).with_partition_data(partitions),
    ])
}

fn metadata_request() -> MetadataRequest {
    use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
    MetadataRequest::default()
        .with_topics(Some(vec![MetadataRequestTopic::default().with_name(Some(topic_name()))]))
}
